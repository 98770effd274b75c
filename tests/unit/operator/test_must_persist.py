"""Which decisions the reconciler writes before their I/O (reconcile.must_persist): reads of the
backend are not written first; everything that acts, and what records it, is (invariant 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.api.models import ComputeInstanceStatus
from cloudkit.lifecycle.types import (
    AddFinalizer,
    CancelJob,
    CancelOutcome,
    Decision,
    FindJob,
    IOAction,
    LaunchDeprovision,
    LaunchOutcome,
    LaunchProvision,
    LookupOutcome,
    Observation,
    Outcome,
    PollJob,
    PollOutcome,
    RemoveFinalizer,
    RestartOutcome,
    RestartVirtualMachine,
)
from cloudkit.operator.reconcile import must_persist

READING = JobReading("7", JobState.RUNNING, "running")
POLL = PollJob(JobType.PROVISION, "7")
FIND = FindJob(JobType.PROVISION, "cid", datetime(2026, 3, 1, tzinfo=UTC))


def decision(io: IOAction | None, *finalizers: AddFinalizer | RemoveFinalizer) -> Decision:
    return Decision(status=ComputeInstanceStatus(), finalizers=finalizers, io=io)


def after(*outcomes: Outcome) -> Observation:
    return Observation(vms=(), outcomes=outcomes)


@pytest.mark.parametrize("io", [POLL, FIND])
def test_a_read_of_the_backend_is_not_written_first(io: IOAction) -> None:
    assert not must_persist(decision(io), after())
    assert not must_persist(decision(io), after(PollOutcome(JobType.PROVISION, "7", READING)))


@pytest.mark.parametrize(
    "io",
    [
        LaunchProvision("cid"),
        LaunchDeprovision("cid"),
        CancelJob("7"),
        RestartVirtualMachine("ns", "vm"),
    ],
)
def test_io_that_acts_is_written_first(io: IOAction) -> None:
    assert must_persist(decision(io), after())


@pytest.mark.parametrize(
    "outcome",
    [
        LaunchOutcome(JobType.PROVISION, "cid", reading=READING),
        LookupOutcome(JobType.PROVISION, "cid", reading=READING),
        CancelOutcome("7", accepted=True),
        RestartOutcome("ns", "vm"),
    ],
)
def test_what_records_an_action_s_outcome_is_written_before_a_poll(outcome: Outcome) -> None:
    assert must_persist(decision(POLL), after(outcome))


def test_an_ending_pass_and_finalizer_changes_are_written() -> None:
    assert must_persist(decision(None), after())
    assert must_persist(decision(POLL, AddFinalizer("f")), after())
    assert must_persist(decision(POLL, RemoveFinalizer("f")), after())
