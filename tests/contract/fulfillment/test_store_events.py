"""The store's event feed on every database: one event per change, after its commit, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloudkit.fulfillment.store import feed
from cloudkit.fulfillment.store.base import Event, Kind, NotFound, Object, Scope, Store

ACME = Scope.of("acme")
CI: Kind = "compute_instances"


def instance(name: str, **metadata: Any) -> Object:
    return {
        "metadata": {"name": name, "tenant": "acme", "creator": "alice", **metadata},
        "spec": {"template": "small"},
        "status": {"state": "STARTING", "count": 0},
    }


async def take(events: Any, count: int, within: float = 20.0) -> list[Event]:
    taken: list[Event] = []

    async def collect() -> None:
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                return

    try:
        await asyncio.wait_for(collect(), within)
    except TimeoutError:
        raise AssertionError(f"{count} events not seen within {within}s; got {taken}") from None
    return taken


async def test_every_change_publishes_one_event_in_commit_order(store: Store) -> None:
    events = store.events()
    created = await store.create(CI, instance("web", finalizers=["controller"]))
    id = created["id"]
    await store.update(CI, id, _count(1), scope=ACME)
    await store.update(CI, id, _count(1), scope=ACME)  # no change: no event
    await store.signal(CI, id, scope=ACME)
    await store.delete(CI, id, scope=ACME)
    await store.delete(CI, id, scope=ACME)  # already marked: no event
    await store.update(CI, id, _no_finalizers, scope=ACME)

    seen = await take(events, 5)
    assert [e.type for e in seen] == ["CREATED", "UPDATED", "SIGNALED", "UPDATED", "DELETED"]
    assert [e.object["metadata"]["version"] for e in seen] == [1, 2, 2, 3, 4]
    assert all(e.kind == CI and e.object["id"] == id for e in seen)
    assert all(e.tenant == "acme" for e in seen)
    assert [e.seq for e in seen] == sorted({e.seq for e in seen})
    assert seen[0].object == created
    assert seen[3].object["metadata"]["deletion_timestamp"]


async def test_concurrent_changes_publish_in_commit_order(store: Store) -> None:
    created = await store.create(CI, instance("web"))
    events = store.events()
    await asyncio.gather(
        *(store.update(CI, created["id"], _increment, scope=ACME) for _ in range(30))
    )
    seen = await take(events, 30)
    assert [e.object["status"]["count"] for e in seen] == list(range(1, 31))
    assert [e.object["metadata"]["version"] for e in seen] == list(range(2, 32))


async def test_an_event_is_published_after_its_commit(store: Store, reopen: Any) -> None:
    # Another store on the same database reads what the event announces: it was committed.
    # Each write waits until its event was checked, so the next write cannot change what the
    # check reads (a delete landing before the CREATED event's read once failed it under load).
    other = await reopen()
    events = store.events()
    checked: asyncio.Queue[str] = asyncio.Queue()

    async def check_each() -> None:
        async for event in events:
            if event.type == "DELETED":
                with pytest.raises(NotFound):
                    await other.get(CI, event.object["id"], scope=ACME)
            else:
                stored = await other.get(CI, event.object["id"], scope=ACME)
                assert stored["metadata"]["version"] >= event.object["metadata"]["version"]
            checked.put_nowait(event.type)
            if event.type == "DELETED":
                return
        raise AssertionError("the event stream ended before DELETED")

    checking = asyncio.create_task(check_each())

    async def next_checked() -> str:
        getting = asyncio.ensure_future(checked.get())
        done, _ = await asyncio.wait({getting, checking}, timeout=20, return_when="FIRST_COMPLETED")
        if getting not in done:
            getting.cancel()
            if checking in done:
                checking.result()  # the check's own failure
            raise AssertionError("no event checked within 20 s")
        return getting.result()

    created = await store.create(CI, instance("web"))
    assert await next_checked() == "CREATED"
    await store.update(CI, created["id"], _increment, scope=ACME)
    assert await next_checked() == "UPDATED"
    await store.delete(CI, created["id"], scope=ACME)
    assert await next_checked() == "DELETED"
    await asyncio.wait_for(checking, 20)


async def test_events_reach_only_subscribers_present_at_the_commit(store: Store) -> None:
    await store.create(CI, instance("before"))
    events = store.events()
    await store.create(CI, instance("after"))
    (seen,) = await take(events, 1)
    assert seen.object["metadata"]["name"] == "after"


async def test_a_slow_subscriber_is_dropped_and_writers_go_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "SUBSCRIBER_QUEUE_LIMIT", 3)
    slow = store.events()
    keeping_up = asyncio.create_task(take(store.events(), 5))
    for index in range(5):
        await store.create(CI, instance(f"vm-{index}"))
    assert len(await keeping_up) == 5
    # The slow one ends (its client re-lists) instead of holding anything up.
    assert await asyncio.wait_for(_drain(slow), 20) == []
    assert getattr(slow, "overflowed", None) is True


async def test_closing_the_store_ends_the_feed(reopen: Any) -> None:
    store = await reopen()
    events = store.events()
    await store.close()
    assert await asyncio.wait_for(_drain(events), 20) == []


def _count(value: int) -> Any:
    def change(obj: Object) -> Object:
        obj["status"]["count"] = value
        return obj

    return change


def _increment(obj: Object) -> Object:
    obj["status"]["count"] += 1
    return obj


def _no_finalizers(obj: Object) -> Object:
    obj["metadata"]["finalizers"] = []
    return obj


async def _drain(events: Any) -> list[Event]:
    return [event async for event in events]
