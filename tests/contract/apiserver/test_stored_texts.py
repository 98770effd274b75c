"""Replies, GETs, lists and watch lines embed the store's JSON text of an object instead of
encoding it again: that text must always be the object the server holds.

The Table rendering (`includeObject=Object`) still encodes the object held in memory, so
after every kind of write (create, status update, merge and JSON patch, deletion pending on a
finalizer, the finalizer's removal) each plain rendering must equal the Table's object, and
the watch lines must carry the same objects as the writes' replies.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.apiserver.apiserver_client import (
    CONFIGMAPS,
    WIDGETS,
    Api,
    configmap,
    read_events,
    widget,
)

pytestmark = pytest.mark.stack
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
FINALIZER = "test.cloudkit.dev/hold"


async def _same_everywhere(api: Api, collection: str, name: str, reply: Any) -> None:
    """The write's reply, a GET, the list's item and the Table's object are one object."""
    got = await api.ok("GET", f"{collection}/{name}")
    listed = await api.ok("GET", collection)
    table = await api.ok("GET", f"{collection}/{name}", headers=TABLE,
                         params={"includeObject": "Object"})  # fmt: skip
    held = table["rows"][0]["object"]
    (item,) = [i for i in listed["items"] if i["metadata"]["name"] == name]
    assert reply == got == item == held, (reply, got, item, held)


async def test_replies_lists_and_watch_lines_are_the_held_object(api: Api) -> None:
    await api.install_widgets()
    replies: list[Any] = []
    async with api.watch(WIDGETS, {"resourceVersion": "0"}) as watch:
        w = await api.ok("POST", WIDGETS, widget("w1"))
        await _same_everywhere(api, WIDGETS, "w1", w)
        replies.append(w)
        w = await api.ok("PUT", f"{WIDGETS}/w1/status", {**w, "status": {"phase": "Ready"}})
        await _same_everywhere(api, WIDGETS, "w1", w)
        replies.append(w)
        w = await api.ok("PATCH", f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}},
                         content_type="application/merge-patch+json")  # fmt: skip
        await _same_everywhere(api, WIDGETS, "w1", w)
        replies.append(w)
        add = [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]
        w = await api.ok("PATCH", f"{WIDGETS}/w1", add,
                         content_type="application/json-patch+json")  # fmt: skip
        await _same_everywhere(api, WIDGETS, "w1", w)
        replies.append(w)
        w = await api.ok("DELETE", f"{WIDGETS}/w1")  # pending: the finalizer holds it
        await _same_everywhere(api, WIDGETS, "w1", w)
        replies.append(w)
        drop = [{"op": "remove", "path": "/metadata/finalizers"}]
        gone = await api.ok("PATCH", f"{WIDGETS}/w1", drop,
                            content_type="application/json-patch+json")  # fmt: skip
        events = await read_events(watch, 6)
    assert [e["type"] for e in events] == ["ADDED"] + ["MODIFIED"] * 4 + ["DELETED"]
    assert [e["object"] for e in events[:5]] == replies
    assert events[5]["object"] == gone

    c = await api.ok("POST", CONFIGMAPS, configmap("c1"))
    await _same_everywhere(api, CONFIGMAPS, "c1", c)
    c = await api.ok("PUT", f"{CONFIGMAPS}/c1", {**c, "data": {"k": "v"}})
    await _same_everywhere(api, CONFIGMAPS, "c1", c)
    # A watch from the start replays the same texts.
    async with api.watch(CONFIGMAPS, {"resourceVersion": "1"}) as watch:
        replayed = await read_events(watch, 2)
    assert [e["object"]["data"] for e in replayed if e["object"]["metadata"]["name"] == "c1"] == [
        {},
        {"k": "v"},
    ]
