"""The scenario validations catch each upstream fault on hand-made traces, and pass a good one."""

from __future__ import annotations

from typing import Any

import pytest

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
    assert v.provision_terminal_with_matching_message(GOOD).passed
    assert v.single_deprovision_after_provision_terminal(GOOD).passed
    assert v.phase_deleting_after_delete(GOOD).passed


def test_stale_message_with_canceled_state_fails() -> None:
    """Upstream fault fbebb50e6: state copied without its message."""
    trace = [*GOOD[:3], snap(4, ("Canceled", "running"))]
    result = v.provision_terminal_with_matching_message(trace)
    assert not result.passed
    assert "mismatch" in result.detail


def test_deprovision_recorded_while_provision_running_fails() -> None:
    """Upstream fault b429e06f3: deprovision job written beside a non-terminal provision job."""
    trace = [
        *GOOD[:3],
        snap(4, ("Running", "running"), ("Pending", "Deprovisioning job triggered")),
    ]
    result = v.single_deprovision_after_provision_terminal(trace)
    assert not result.passed
    assert "not terminal" in result.detail


def test_two_deprovision_jobs_fail() -> None:
    second = snap(7, ("Canceled", "canceled"), ("Pending", "again"))
    second.status["deprovisionJob"]["id"] = "9"
    result = v.single_deprovision_after_provision_terminal([*GOOD, second])
    assert not result.passed


def test_provision_never_terminal_fails() -> None:
    assert not v.provision_terminal_with_matching_message(GOOD[:3]).passed


def test_before_delete_requires_a_launched_job() -> None:
    intent = snap(1, ("Pending", "Launching provisioning job"), deleting=False)
    intent.status["provisionJob"]["id"] = ""
    assert not v.only_provision_job_before_delete(intent).passed


def test_orphan_vm_and_resource_gone() -> None:
    assert not v.no_orphan_vm(["t/vm1"], "label").passed
    assert v.no_orphan_vm([], "label").passed
    assert not v.resource_gone(False, 3.0).passed


def eda_snap(rv: int, state: str, *, reconciled: str | None, deleting: bool = False) -> Snapshot:
    status: dict[str, Any] = {
        "phase": "Deleting" if deleting else "Progressing",
        "desiredConfigVersion": "v1",
        "provisionJob": {"id": "eda-webhook-1", "state": state, "configVersion": "v1"},
        "jobs": [],
    }
    if reconciled is not None:
        status["reconciledConfigVersion"] = reconciled
    return Snapshot(at=float(rv), resource_version=str(rv), deleting=deleting, status=status)


def test_an_eda_job_left_running_at_deletion_passes_the_report_check() -> None:
    trace = [eda_snap(1, "Running", reconciled=None), eda_snap(2, "Running", reconciled=None)]
    assert v.provision_succeeded_only_on_playbook_report(trace).passed


def test_an_eda_job_succeeded_on_the_playbook_s_report_passes() -> None:
    trace = [eda_snap(1, "Running", reconciled=None), eda_snap(2, "Succeeded", reconciled="v1")]
    assert v.provision_succeeded_only_on_playbook_report(trace).passed
    assert v.provision_succeeded_at_ready(trace[-1], "eda").passed


@pytest.mark.parametrize(
    "invented",
    [
        eda_snap(2, "Succeeded", reconciled=None),  # no report at all
        eda_snap(2, "Succeeded", reconciled="v0"),  # the report of an older configuration
        eda_snap(2, "Canceled", reconciled=None),  # EDA cannot cancel
        eda_snap(2, "Failed", reconciled="v1"),  # nor observe a failure
    ],
)
def test_an_eda_terminal_state_the_operator_could_not_know_fails(invented: Snapshot) -> None:
    trace = [eda_snap(1, "Running", reconciled=None), invented]
    result = v.provision_succeeded_only_on_playbook_report(trace)
    assert not result.passed
    assert "at rv 2" in result.detail


@pytest.mark.parametrize("state", ["Running", "Unknown", "Pending"])
def test_ready_without_a_succeeded_provision_job_fails_for_both_providers(state: str) -> None:
    ready = eda_snap(5, state, reconciled="v1")
    assert not v.provision_succeeded_at_ready(ready, "eda").passed
    assert not v.provision_succeeded_at_ready(ready, "aap").passed


def test_ready_with_eda_succeeded_but_no_report_fails() -> None:
    assert not v.provision_succeeded_at_ready(
        eda_snap(5, "Succeeded", reconciled="v0"), "eda"
    ).passed


def test_a_non_terminal_provision_job_fails_the_terminal_check_for_any_provider() -> None:
    """The name promises a terminal job: Running or Unknown never pass it."""
    for state in ("Running", "Unknown"):
        assert not v.provision_terminal_with_matching_message(
            [eda_snap(1, state, reconciled="v1")]
        ).passed


def test_more_than_one_eda_deprovision_job_fails() -> None:
    one = eda_snap(1, "Running", reconciled=None, deleting=True)
    one.status["deprovisionJob"] = {"id": "eda-webhook-2", "state": "Running"}
    two = eda_snap(2, "Running", reconciled=None, deleting=True)
    two.status["deprovisionJob"] = {"id": "eda-webhook-3", "state": "Running"}
    assert v.at_most_one_deprovision_job([one]).passed
    assert not v.at_most_one_deprovision_job([one, two]).passed
