"""The records the controller keeps from its stream and its writes: the newest version wins, an
archived record is forgotten."""

from __future__ import annotations

from typing import Any

from cloudkit.fulfillment.controller.seen import SeenRecords


def record(version: int, state: str = "STARTING") -> dict[str, Any]:
    return {"id": "r-1", "metadata": {"version": version}, "status": {"state": state}}


def test_the_newest_version_wins_whatever_the_order_seen() -> None:
    seen = SeenRecords()
    seen.saw(record(3, "RUNNING"))
    seen.saw(record(2, "STARTING"))  # an event that arrives after the write's answer
    assert seen.get("r-1") == record(3, "RUNNING")
    seen.saw(record(4, "DELETING"))
    assert seen.get("r-1") == record(4, "DELETING")


def test_an_archived_record_is_forgotten_and_one_without_id_ignored() -> None:
    seen = SeenRecords()
    seen.saw(record(1))
    seen.saw({"metadata": {"version": 9}})
    assert len(seen) == 1
    seen.forget("r-1")
    assert seen.get("r-1") is None and len(seen) == 0
