"""Live watch events are handed to each connection as they are committed: every watcher
sees every change once and in order, and a client that stops reading is dropped (it
re-watches, as after any ended watch) instead of the server buffering for it without bound."""

from __future__ import annotations

import asyncio
import json

import pytest

from cloudkit.local.apiserver import watch
from tests.contract.apiserver.apiserver_client import Api, configmap, read_events

pytestmark = pytest.mark.stack

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


async def test_many_watchers_see_every_change_in_order(api: Api) -> None:
    rv = (await api.ok("GET", CONFIGMAPS))["metadata"]["resourceVersion"]
    responses = [
        await api.watch(CONFIGMAPS, {"resourceVersion": rv}).__aenter__() for _ in range(20)
    ]
    try:
        for i in range(10):
            await api.ok("POST", CONFIGMAPS, configmap(f"fan-{i}"))
        await api.ok("DELETE", f"{CONFIGMAPS}/fan-0")
        for resp in responses:
            events = await asyncio.wait_for(read_events(resp, 11), 10)
            seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
            assert seen == [("ADDED", f"fan-{i}") for i in range(10)] + [("DELETED", "fan-0")]
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
            assert rvs == sorted(rvs)
    finally:
        for resp in responses:
            resp.close()


async def test_a_watcher_that_stops_reading_is_dropped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "UNSENT_LIMIT_BYTES", 1024 * 1024)
    rv = (await api.ok("GET", CONFIGMAPS))["metadata"]["resourceVersion"]
    big = {"blob": "x" * (512 * 1024)}
    writes = 40  # 20 MiB: more than the socket buffers and the limit together
    async with api.watch(CONFIGMAPS, {"resourceVersion": rv}) as resp:
        # The client reads nothing while the writes go on: aiohttp stops taking bytes off
        # the socket once its own small buffer is full.
        for i in range(writes):
            await asyncio.wait_for(
                api.ok("POST", CONFIGMAPS, {**configmap(f"big-{i}"), "data": big}), 10
            )
        # Read to the end: a stream that did not end times out here.
        body = await asyncio.wait_for(resp.content.read(), 10)
    received = [json.loads(line)["object"]["metadata"]["name"] for line in body.splitlines()]
    # The stream ended (the watch timeout is far away) before the last events: dropped.
    assert 0 < len(received) < writes
    assert received == [f"big-{i}" for i in range(len(received))]
