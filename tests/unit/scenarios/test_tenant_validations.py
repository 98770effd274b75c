"""The checks of a scenario through the fulfillment API: upstream's deprovision checks, the
record gone with the resource, and the tenant's view against the resource's, on hand-made data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudkit.scenarios import validations as v
from cloudkit.scenarios.orders import STATE_OF_PHASE, short_state
from cloudkit.scenarios.validations import Snapshot


def deleting(at: float, deprovision: tuple[str, str] | None) -> Snapshot:
    status: dict[str, Any] = {"phase": "Deleting", "jobs": []}
    if deprovision is not None:
        job_id, state = deprovision
        status["deprovisionJob"] = {"id": job_id, "state": state, "message": state.lower()}
        status["jobs"].append({"jobID": job_id, "type": "deprovision", "state": state})
    return Snapshot(at=at, resource_version=str(at), deleting=True, status=status)


def test_deprovision_not_failed() -> None:
    assert v.deprovision_job_not_failed([deleting(1, ("8", "Running"))]).passed
    assert v.deprovision_job_not_failed([deleting(1, None)]).passed  # skipped
    failed = v.deprovision_job_not_failed(
        [deleting(1, ("8", "Running")), deleting(2, ("8", "Failed"))]
    )
    assert not failed.passed and "Failed" in failed.detail


def test_deprovision_id_unchanged_until_gone_or_for_the_hold() -> None:
    one = [deleting(1, ("8", "Running")), deleting(3, ("8", "Succeeded"))]
    assert v.deprovision_job_id_unchanged(one, gone=True).passed
    # Still there and watched for 2 s only: not proven yet.
    assert not v.deprovision_job_id_unchanged(one, gone=False).passed
    held = [*one, deleting(12, ("8", "Succeeded"))]
    assert v.deprovision_job_id_unchanged(held, gone=False).passed
    second = [*one, deleting(4, ("9", "Pending"))]
    check = v.deprovision_job_id_unchanged(second, gone=True)
    assert not check.passed and "'9'" in check.detail


def test_record_gone_and_order_state() -> None:
    assert v.record_gone(True, 0.5).passed
    assert not v.record_gone(False, 30).passed
    assert v.order_state_seen("STARTING", "STARTING", 0.1).passed
    assert not v.order_state_seen("", "STARTING", 60).passed


def record(state: str, ip: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"state": f"COMPUTE_INSTANCE_STATE_{state}"}
    if ip is not None:
        status["internal_ip_address"] = ip
    return {"id": "r", "status": status}


def test_tenant_view_agrees() -> None:
    ready = {"phase": "Ready", "ipAddress": "10.0.0.7"}
    assert short_state(record("RUNNING")) == "RUNNING"
    assert v.tenant_view_agrees(record("RUNNING", "10.0.0.7"), ready, STATE_OF_PHASE).passed
    assert v.tenant_view_agrees(None, None, STATE_OF_PHASE).passed  # both gone
    for wrong_record, status in (
        (record("STARTING", "10.0.0.7"), ready),  # the state lags behind
        (record("RUNNING"), ready),  # no IP address reached the tenant
        (record("RUNNING", "10.0.0.8"), ready),  # another one
        (None, ready),  # the record went, the resource stayed
        (record("DELETING"), None),  # the resource went, the record stayed
    ):
        check = v.tenant_view_agrees(wrong_record, status, STATE_OF_PHASE)
        assert not check.passed, check.detail


def test_the_tenant_sees_the_restart_it_asked_for() -> None:
    asked = datetime(2026, 12, 7, 6, 30, 5, tzinfo=UTC)
    seen = {"status": {"last_restarted_at": "2026-12-07T06:30:05Z"}}
    assert v.restart_seen_by_tenant(seen, asked, 1.0).passed
    wrongs: tuple[dict[str, Any] | None, ...] = (
        None,  # the record is gone
        {"status": {}},  # never written back
        {"status": {"last_restarted_at": "2026-12-07T06:29:00Z"}},  # an earlier restart
        {"status": {"last_restarted_at": "not a time"}},
    )
    for wrong in wrongs:
        check = v.restart_seen_by_tenant(wrong, asked, 180)
        assert not check.passed, check.detail
