"""What only the PostgreSQL store does: events between processes, notification upkeep, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from cloudkit.fulfillment.store import open_store, postgresql
from cloudkit.fulfillment.store.base import Event, Scope, Unavailable
from cloudkit.local.stack.ports import free_port
from tests.harness.postgresql import PostgresqlServer

ACME = Scope.of("acme")
CI = "compute_instances"


@pytest.fixture
def database_url(postgresql_database: str) -> str:
    # Only PostgreSQL here; emptied as the contract's database is.
    return PostgresqlServer.empty_database(postgresql_database)


def instance(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "tenant": "acme"}, "spec": {"template": "t", **spec}}


async def take(events: Any, count: int) -> list[Event]:
    taken: list[Event] = []

    async def collect() -> None:
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                return

    await asyncio.wait_for(collect(), 30)
    return taken


async def test_another_process_events_arrive_through_listen(reopen: Any) -> None:
    writer, reader = await reopen(), await reopen()
    events = reader.events()
    big = "x" * 20_000  # beyond pg_notify's payload limit: fetched from the table
    created = await writer.create(CI, instance("web", user_data=big))
    await writer.update(CI, created["id"], _state("RUNNING"), scope=ACME)
    await writer.signal(CI, created["id"], scope=ACME)
    await writer.delete(CI, created["id"], scope=ACME)

    seen = await take(events, 4)
    assert [e.type for e in seen] == ["CREATED", "UPDATED", "SIGNALED", "DELETED"]
    assert seen[0].object == created
    assert seen[0].object["spec"]["user_data"] == big
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    # Each event reached the reader once: its own process's copy is not announced twice.
    mine = writer.events()
    await writer.create(CI, instance("again"))
    (again,) = await take(mine, 1)
    assert again.object["metadata"]["name"] == "again"


async def test_old_notifications_are_deleted(
    reopen: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgresql, "NOTIFICATION_LIFETIME_S", 0.0)
    store = await reopen()
    for name in ("a", "b", "c"):
        await store.create(CI, instance(name))
    with psycopg.connect(database_url) as db:
        (left,) = db.execute("SELECT count(*) FROM notifications").fetchone() or (None,)
    # Each batch deletes those before it: at most the last batch's rows are left.
    assert left is not None and left <= 1


async def test_an_unreachable_database_is_unavailable_without_its_password(
    postgresql: PostgresqlServer,
) -> None:
    url = postgresql.url().replace(f":{postgresql.port}/", f":{free_port()}/")
    with pytest.raises(Unavailable) as refused:
        await open_store(url)
    assert postgresql.password not in str(refused.value)
    wrong = postgresql.url().replace(postgresql.password, "not-the-password")
    with pytest.raises(Unavailable) as denied:
        await open_store(wrong)
    assert "not-the-password" not in str(denied.value)


def _state(state: str) -> Any:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("status", {})["state"] = state
        return obj

    return change
