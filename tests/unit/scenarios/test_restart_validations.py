"""The restart scenario's validations pass a good restart and catch each way one goes wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Snapshot

REQUESTED = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
WHEN = "2026-03-01T10:00:05Z"


def snap(
    rv: int,
    *conditions: tuple[str, str, str],
    phase: str = "Ready",
    last: str | None = None,
    ip: str | None = "10.200.1.2",
) -> Snapshot:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": t, "status": s, "reason": r} for t, s, r in conditions],
    }
    if last is not None:
        status["lastRestartedAt"] = last
    if ip is not None:
        status["ipAddress"] = ip
    return Snapshot(at=float(rv), resource_version=str(rv), deleting=False, status=status)


def vmi(uid: str, created: str, ip: str | None = "10.200.1.2") -> dict[str, Any]:
    interfaces = [{"name": "default", "ipAddress": ip}] if ip else [{"name": "default"}]
    return {
        "metadata": {"uid": uid, "creationTimestamp": created},
        "status": {"interfaces": interfaces},
    }


IN_PROGRESS = ("RestartInProgress", "True", "RestartInProgress")
GOOD = [
    snap(1, phase="Progressing"),
    snap(2, IN_PROGRESS, phase="Progressing"),
    snap(3, phase="Progressing", last=WHEN),
    snap(4, last=WHEN),
]


def test_a_good_restart_passes() -> None:
    assert v.restart_in_progress_seen(GOOD).passed
    assert v.no_restart_failure(GOOD).passed
    assert v.restart_completed(GOOD[-1], REQUESTED).passed
    before, after = vmi("a", "2026-03-01T09:59:00Z"), vmi("b", WHEN)
    assert v.instance_recreated(before, after, REQUESTED).passed  # the request's second counts
    assert v.ip_address_reported(GOOD[-1], after).passed


def test_a_restart_never_shown_fails() -> None:
    quiet = [snap(1, phase="Progressing"), snap(2, last=WHEN)]
    assert not v.restart_in_progress_seen(quiet).passed
    false_only = [snap(1, ("RestartInProgress", "False", "x"))]
    assert not v.restart_in_progress_seen(false_only).passed


def test_a_restart_failure_anywhere_fails() -> None:
    failed = [*GOOD[:2], snap(3, ("RestartFailed", "True", "VMIDeletionFailed")), GOOD[-1]]
    check = v.no_restart_failure(failed)
    assert not check.passed and "VMIDeletionFailed" in check.detail


def test_the_same_or_an_older_instance_is_not_a_restart() -> None:
    before = vmi("a", "2026-03-01T09:59:00Z")
    assert not v.instance_recreated(before, before, REQUESTED).passed
    fresh = vmi("a", WHEN)  # created at the request, but never replaced
    assert not v.instance_recreated(fresh, fresh, REQUESTED).passed
    older = vmi("b", "2026-03-01T10:00:04Z")
    assert not v.instance_recreated(before, older, REQUESTED).passed
    assert not v.instance_recreated(before, None, REQUESTED).passed
    assert not v.instance_recreated(None, before, REQUESTED).passed


def test_an_unfinished_restart_is_not_complete() -> None:
    assert not v.restart_completed(None, REQUESTED).passed
    assert not v.restart_completed(snap(1, last=None), REQUESTED).passed
    assert not v.restart_completed(snap(1, last="2026-03-01T10:00:04Z"), REQUESTED).passed
    assert not v.restart_completed(snap(1, IN_PROGRESS, last=WHEN), REQUESTED).passed
    still_failed = snap(1, ("RestartFailed", "True", "NoVMReference"), last=WHEN)
    assert not v.restart_completed(still_failed, REQUESTED).passed
    assert not v.restart_completed(snap(1, phase="Progressing", last=WHEN), REQUESTED).passed
    assert v.restart_completed(snap(1, last="2026-03-01T10:00:05.000+00:00"), REQUESTED).passed


def test_the_address_must_be_the_instances() -> None:
    instance = vmi("b", WHEN, ip="10.200.1.2")
    assert not v.ip_address_reported(snap(1, ip=None), instance).passed
    assert not v.ip_address_reported(snap(1, ip="10.200.9.9"), instance).passed
    assert not v.ip_address_reported(snap(1), vmi("b", WHEN, ip=None)).passed
    assert not v.ip_address_reported(None, instance).passed
