"""The scenario validations catch each upstream fault on hand-made traces, and pass a good one."""

from __future__ import annotations

from typing import Any

from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Snapshot


def snap(
    rv: int,
    prov: tuple[str, str] | None,
    deprov: tuple[str, str] | None = None,
    *,
    deleting: bool = True,
    phase: str = "Deleting",
) -> Snapshot:
    status: dict[str, Any] = {"phase": phase, "jobs": []}
    if prov:
        status["provisionJob"] = {"id": "7", "state": prov[0], "message": prov[1]}
        status["jobs"].append({"jobID": "7", "type": "provision", "state": prov[0]})
    if deprov:
        status["deprovisionJob"] = {"id": "8", "state": deprov[0], "message": deprov[1]}
        status["jobs"].append({"jobID": "8", "type": "deprovision", "state": deprov[0]})
    return Snapshot(at=float(rv), resource_version=str(rv), deleting=deleting, status=status)


GOOD = [
    snap(1, ("Running", "running"), deleting=False, phase="Progressing"),
    snap(2, ("Running", "running"), phase="Progressing"),
    snap(3, ("Running", "running")),
    snap(4, ("Canceled", "canceled")),
    snap(5, ("Canceled", "canceled"), ("Pending", "Deprovisioning job triggered")),
    snap(6, ("Canceled", "canceled"), ("Succeeded", "successful")),
]


def test_good_trace_passes_every_validation() -> None:
    assert v.only_provision_job_before_delete(GOOD[0]).passed
    assert v.provision_terminal_with_matching_message(GOOD, "aap").passed
    assert v.single_deprovision_after_provision_terminal(GOOD, "aap").passed
    assert v.phase_deleting_after_delete(GOOD).passed


def test_stale_message_with_canceled_state_fails() -> None:
    """Upstream fault fbebb50e6: state copied without its message."""
    trace = [*GOOD[:3], snap(4, ("Canceled", "running"))]
    result = v.provision_terminal_with_matching_message(trace, "aap")
    assert not result.passed
    assert "mismatch" in result.detail


def test_deprovision_recorded_while_provision_running_fails() -> None:
    """Upstream fault b429e06f3: deprovision job written beside a non-terminal provision job."""
    trace = [
        *GOOD[:3],
        snap(4, ("Running", "running"), ("Pending", "Deprovisioning job triggered")),
    ]
    result = v.single_deprovision_after_provision_terminal(trace, "aap")
    assert not result.passed
    assert "not terminal" in result.detail


def test_two_deprovision_jobs_fail() -> None:
    second = snap(7, ("Canceled", "canceled"), ("Pending", "again"))
    second.status["deprovisionJob"]["id"] = "9"
    result = v.single_deprovision_after_provision_terminal([*GOOD, second], "aap")
    assert not result.passed


def test_provision_never_terminal_fails() -> None:
    assert not v.provision_terminal_with_matching_message(GOOD[:3], "aap").passed


def test_before_delete_requires_a_launched_job() -> None:
    intent = snap(1, ("Pending", "Launching provisioning job"), deleting=False)
    intent.status["provisionJob"]["id"] = ""
    assert not v.only_provision_job_before_delete(intent).passed


def test_orphan_vm_and_resource_gone() -> None:
    assert not v.no_orphan_vm(["t/vm1"], "label").passed
    assert v.no_orphan_vm([], "label").passed
    assert not v.resource_gone(False, 3.0).passed
