"""What a store acknowledged is there when the database is opened again, on every database."""

from __future__ import annotations

import asyncio
from typing import Any

from cloudkit.fulfillment.store.base import Kind, NotFound, Object, Scope, Store

ACME = Scope.of("acme")
CI: Kind = "compute_instances"


def instance(name: str, **metadata: Any) -> Object:
    return {
        "metadata": {"name": name, "tenant": "acme", "creator": "alice", **metadata},
        "spec": {"template": "small"},
        "status": {"state": "STARTING"},
    }


async def test_records_survive_a_reopen(reopen: Any) -> None:
    first: Store = await reopen()
    kept = await first.create(CI, instance("kept"))
    changed = await first.update(CI, kept["id"], _running, scope=ACME)
    held = await first.create(CI, instance("held", finalizers=["controller"]))
    held = await first.delete(CI, held["id"], scope=ACME)
    gone = await first.create(CI, instance("gone"))
    await first.delete(CI, gone["id"], scope=ACME)
    many = await asyncio.gather(*(first.create(CI, instance(f"vm-{i}")) for i in range(20)))
    events = first.events()
    await first.signal(CI, kept["id"], scope=ACME)
    last_seq = (await anext(aiter(events))).seq
    await first.close()

    second: Store = await reopen()
    assert await second.get(CI, kept["id"], scope=ACME) == changed
    assert await second.get(CI, held["id"], scope=ACME) == held
    try:
        await second.get(CI, gone["id"], scope=ACME)
        raise AssertionError("an archived record came back")
    except NotFound:
        pass
    listed = await second.list(CI, scope=ACME, limit=100)
    assert listed.total == 22
    assert {o["id"] for o in listed.items} >= {o["id"] for o in many}
    # The event sequence goes on after a reopen: a client never sees it go backwards.
    events = second.events()
    await second.signal(CI, kept["id"], scope=ACME)
    assert (await anext(aiter(events))).seq > last_seq


def _running(obj: Object) -> Object:
    obj["status"]["state"] = "RUNNING"
    return obj
