"""An instance whose spec does not parse: what its status says about it (Accepted False).

Pure: the problem as people read it (the first few validation errors, by field), and the
status that reports it, or None when the status already says exactly that (nothing to write,
so an unreadable object costs no write per event), and the Warning event. The reconciler writes
both (reconcile.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cloudkit.lifecycle.types import EventType, RecordEvent

INVALID_REASON = "InvalidSpec"
SHOWN_ERRORS = 3


def validation_summary(error: ValidationError) -> str:
    """`field.path: reason` of the first SHOWN_ERRORS errors, joined by "; "."""
    parts = []
    for item in error.errors()[:SHOWN_ERRORS]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid object"


def rejected_status(raw: dict[str, Any], problem: str, now: datetime) -> dict[str, Any] | None:
    """`raw`'s status with condition Accepted False for `problem`; None if it says so already."""
    status = dict(raw.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Accepted"]
    old: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Accepted"), {}
    )
    if old.get("reason") == INVALID_REASON and old.get("message") == problem:
        return None
    accepted = {
        "type": "Accepted",
        "status": "False",
        "reason": INVALID_REASON,
        "message": problem,
        "lastTransitionTime": _timestamp(now),
    }
    status["conditions"] = [*conditions, accepted]
    return status


def rejected_event(problem: str) -> RecordEvent:
    """The Warning event that says why the instance cannot be read."""
    return RecordEvent(EventType.WARNING, INVALID_REASON, problem)


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
