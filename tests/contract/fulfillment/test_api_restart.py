"""kill -9 during a burst of creates and deletes: every acknowledged write is there after the
restart, and a client that follows the event stream and re-lists after a break ends with the
server's final state of every record."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness.fulfillment import EVENTS, PUBLIC, FulfillmentService, Issuer, Tenant
from tests.harness.postgresql import PostgresqlServer
from tests.waiting import until

pytestmark = pytest.mark.stack

WORKERS = 4
ACKED_BEFORE_KILL = 30  # creates acknowledged before the kill, so the burst is well under way


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    """None: the service's default (SQLite in its state dir); else a new PostgreSQL database
    on the session's throwaway server."""
    if request.param == "sqlite":
        return None
    server: PostgresqlServer = request.getfixturevalue("postgresql")
    return server.create_database(f"restart_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def own_service(
    tmp_path: Path, fulfillment_issuer: Issuer, database: str | None
) -> Iterator[FulfillmentService]:
    service = FulfillmentService(tmp_path / "fulfillment", fulfillment_issuer, database)
    asyncio.run(service.start())
    yield service
    service.stop()


class Burst:
    """Creates and deletes from several workers; remembers only what the service acknowledged."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.created: list[str] = []  # acknowledged creates (200 with the object)
        self.deleted: set[str] = set()  # acknowledged deletes
        self.delete_sent: set[str] = set()  # deletes sent, acknowledged or not
        self.stopping = False

    async def worker(self, number: int) -> None:
        step = 0
        while not self.stopping:
            step += 1
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
                if step % 3 == 0 and self.created:
                    await self._delete()
                else:
                    await self._create(f"w{number}-{step}")

    async def _create(self, name: str) -> None:
        status, body = await self.tenant.call(
            "POST", PUBLIC, json={"metadata": {"name": name}, "spec": {"template": "small"}}
        )
        if status == 200:
            self.created.append(body["id"])

    async def _delete(self) -> None:
        candidates = [i for i in self.created if i not in self.delete_sent]
        if not candidates:
            return
        id = candidates[0]
        self.delete_sent.add(id)
        status, _ = await self.tenant.call("DELETE", f"{PUBLIC}/{id}")
        if status == 200:
            self.deleted.add(id)


class Follower:
    """A client's view of its records: listed, then kept by the event stream; a broken stream
    is reopened and the records re-listed (the stream is at most once)."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.view: dict[str, int] = {}  # id → metadata.version
        self.relists = 0

    async def follow(self) -> None:
        while True:
            try:
                async with self.tenant.http.get(EVENTS) as stream:
                    # Subscribed once the headers are in: a re-list now misses nothing.
                    await self._relist()
                    async for line in stream.content:
                        self._apply(line)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.2)  # a server that is down: try again shortly

    async def _relist(self) -> None:
        status, page = await self.tenant.call("GET", PUBLIC, params={"limit": 1000})
        if status != 200:
            raise aiohttp.ClientError(f"list answered {status}")
        self.view = {i["id"]: i["metadata"]["version"] for i in page["items"]}
        self.relists += 1

    def _apply(self, line: bytes) -> None:
        import json

        event = json.loads(line)
        obj = event["compute_instance"]
        if event["type"] == "EVENT_TYPE_OBJECT_DELETED":
            self.view.pop(obj["id"], None)
        else:
            self.view[obj["id"]] = obj["metadata"]["version"]


async def server_view(tenant: Tenant) -> dict[str, int]:
    status, page = await tenant.call("GET", PUBLIC, params={"limit": 1000})
    assert status == 200, page
    return {i["id"]: i["metadata"]["version"] for i in page["items"]}


@contextlib.asynccontextmanager
async def running(*coroutines: Any) -> AsyncIterator[list[asyncio.Task[Any]]]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_kill_9_during_a_burst_loses_no_acknowledged_write(
    own_service: FulfillmentService,
) -> None:
    tenant = own_service.tenant("burst")
    burst = Burst(tenant)
    follower = Follower(tenant)
    try:
        async with running(follower.follow(), *(burst.worker(n) for n in range(WORKERS))):
            await until(
                lambda: asyncio.sleep(0, len(burst.created)),
                lambda n: n >= ACKED_BEFORE_KILL,
                within=120,
                what=f"{ACKED_BEFORE_KILL} acknowledged creates",
            )
            assert burst.deleted, "the burst deleted nothing before the kill"
            own_service.kill()  # in the middle of the burst: requests are in flight
            burst.stopping = True
            await own_service.start()
            await until(
                lambda: asyncio.sleep(0, follower.relists),
                lambda n: n >= 2,
                within=60,
                what="the follower re-listing after the restart",
            )
            # Changes after the restart reach the follower through the new stream.
            after = await tenant.create("after-restart")
            final = await until(
                lambda: server_view(tenant),
                lambda view: view == follower.view and after["id"] in view,
                within=60,
                what="the follower's view equal to the server's",
            )
        kept = [i for i in burst.created if i not in burst.delete_sent]
        assert set(kept) <= set(final), "an acknowledged create is missing after kill -9"
        assert not burst.deleted & set(final), "an acknowledged delete came back after kill -9"
        for id in kept[:5]:
            status, _ = await tenant.call("GET", f"{PUBLIC}/{id}")
            assert status == 200
    finally:
        await tenant.close()
