"""The event stream: newline-delimited JSON over a long response, tenant-scoped, CEL-filtered,
readable with `curl -N`."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.harness.fulfillment import EVENTS, PUBLIC, FulfillmentService, Tenant, wait_line

pytestmark = pytest.mark.stack


async def test_a_tenant_sees_its_records_created_updated_and_deleted(
    acme: Tenant, globex: Tenant
) -> None:
    async with acme.http.get(EVENTS) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("application/x-ndjson")
        await globex.create("theirs")  # never on acme's stream
        created = await acme.create("web")
        await acme.call(
            "PATCH",
            f"{PUBLIC}/{created['id']}",
            params={"update_mask": "metadata.labels"},
            json={"metadata": {"labels": {"a": "1"}}},
        )
        await acme.call("DELETE", f"{PUBLIC}/{created['id']}")
        seen = [await wait_line(stream) for _ in range(3)]
    assert [e["type"] for e in seen] == [
        "EVENT_TYPE_OBJECT_CREATED",
        "EVENT_TYPE_OBJECT_UPDATED",
        "EVENT_TYPE_OBJECT_DELETED",
    ]
    assert {e["compute_instance"]["id"] for e in seen} == {created["id"]}
    assert seen[1]["compute_instance"]["metadata"]["labels"] == {"a": "1"}
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids)
    assert all("finalizers" not in e["compute_instance"]["metadata"] for e in seen)


async def test_the_filter_selects_events_by_object(acme: Tenant) -> None:
    flt = 'this.metadata.name.startsWith("web")'
    async with acme.http.get(EVENTS, params={"filter": flt}) as stream:
        await acme.create("db")
        web = await acme.create("web")
        first = await wait_line(stream)
    assert first["compute_instance"]["id"] == web["id"]


async def test_a_broken_filter_is_400_before_the_stream_starts(acme: Tenant) -> None:
    status, answer = await acme.call("GET", EVENTS, params={"filter": "this.metadata.name =="})
    assert status == 400, answer
    assert "syntax error" in answer["message"]


async def test_curl_follows_the_stream(service: FulfillmentService, acme: Tenant) -> None:
    token = service.token(acme.name)
    curl = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-N",
        "--cacert",
        str(service.ca_file),
        "-H",
        "@-",  # the header from stdin: the token stays out of the process list
        f"{service.url}{EVENTS}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert curl.stdin is not None and curl.stdout is not None
    curl.stdin.write(f"Authorization: Bearer {token}\n".encode())
    await curl.stdin.drain()
    curl.stdin.close()
    try:
        # The stream is open once a change shows up on it; keep creating until one does.
        async def created_line() -> bytes:
            assert curl.stdout is not None
            read = asyncio.ensure_future(curl.stdout.readline())
            while True:
                await acme.create("web")
                done, _ = await asyncio.wait({read}, timeout=1)
                if done:
                    return read.result()

        line = await asyncio.wait_for(created_line(), 60)
        event = json.loads(line)
        assert event["type"] == "EVENT_TYPE_OBJECT_CREATED"
        assert event["compute_instance"]["metadata"]["tenant"] == acme.name
    finally:
        curl.kill()
        await curl.wait()
