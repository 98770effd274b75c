"""Which decisions the reconciler takes on fresh reads only (reconcile.acts_on_reads): those no
resourceVersion precondition fences, the finalizer's removal and a VMI's deletion."""

from __future__ import annotations

import pytest

from cloudkit.api.jobs import JobType
from cloudkit.api.models import ComputeInstanceStatus
from cloudkit.lifecycle.types import (
    AddFinalizer,
    CancelJob,
    Decision,
    IOAction,
    LaunchDeprovision,
    LaunchProvision,
    PollJob,
    RemoveFinalizer,
    RestartVirtualMachine,
)
from cloudkit.operator.reconcile import acts_on_reads


def decision(io: IOAction | None, *finalizers: AddFinalizer | RemoveFinalizer) -> Decision:
    return Decision(status=ComputeInstanceStatus(), finalizers=finalizers, io=io)


def test_removing_the_finalizer_is_decided_on_fresh_reads() -> None:
    assert acts_on_reads(decision(None, RemoveFinalizer("f")))
    assert acts_on_reads(decision(None, AddFinalizer("g"), RemoveFinalizer("f")))


def test_deleting_a_vmi_is_decided_on_fresh_reads() -> None:
    """A cached VM list can be behind (a second VM not seen yet, a VMI already re-created):
    the restart's delete of a VMI is irreversible and carries no precondition."""
    assert acts_on_reads(decision(RestartVirtualMachine("tenant", "vm")))


@pytest.mark.parametrize(
    "io",
    [
        None,
        LaunchProvision("cid"),
        LaunchDeprovision("cid"),
        CancelJob("7"),
        PollJob(JobType.PROVISION, "7"),
    ],
)
def test_what_the_status_write_fences_may_be_decided_on_cached_reads(io: IOAction | None) -> None:
    """Launches and cancels follow a status write that carries the read resourceVersion
    (the intent, invariant 4): a stale read costs a Conflict, not a wrong action."""
    assert not acts_on_reads(decision(io))
    assert not acts_on_reads(decision(io, AddFinalizer("f")))
