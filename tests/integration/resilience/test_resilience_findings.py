"""Pure reproductions of defects the resilience proofs found on the stack (no servers).

Each pins one finding to the function that causes it, so the owner can see it fail in
milliseconds rather than in a two-minute stack run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudkit.api import names
from cloudkit.api.jobs import AAP_CAPABILITIES, JobReading, JobState, JobType
from cloudkit.api.models import ComputeInstance
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.types import (
    LaunchProvision,
    LifecycleConfig,
    Observation,
    PollOutcome,
)

T = datetime(2026, 1, 1, tzinfo=UTC)


def new_instance() -> ComputeInstance:
    return ComputeInstance.model_validate(
        {
            "metadata": {"name": "vm1", "namespace": "ns", "uid": "uid-vm1", "generation": 1},
            "spec": {"templateID": "tmpl"},
        }
    )


def test_retry_keeps_the_real_terminal_state_of_the_job_it_replaces() -> None:
    """Found by the automation-outage proof: the poll that finds a provision job Canceled and
    the retry launch (back-off already due) happen in one decide(); the history record of the
    old job keeps its stale Running/"Failed to get job status" reading for ever."""
    cfg = LifecycleConfig("aap", AAP_CAPABILITIES, retry_backoff_min=timedelta(seconds=2))
    first = decide(new_instance(), Observation(), T, cfg)
    assert isinstance(first.io, LaunchProvision)
    instance = new_instance()
    instance.metadata.finalizers.append(names.OPERATOR_FINALIZER)
    instance.status = first.status
    job = instance.status.provision_job
    assert job is not None
    job.id, job.state, job.message = "1", JobState.RUNNING, "Failed to get job status: refused"
    for record in instance.status.jobs:
        record.job_id, record.state, record.message = "1", job.state, job.message
    later = T + timedelta(seconds=40)
    canceled = PollOutcome(JobType.PROVISION, "1", JobReading("1", JobState.CANCELED, "canceled"))

    decision = decide(instance, Observation(vms=()).with_outcome(canceled), later, cfg)

    assert isinstance(decision.io, LaunchProvision)  # the retry, as designed
    old = [r for r in decision.status.jobs if r.job_id == "1"]
    assert [(r.state, r.message) for r in old] == [(JobState.CANCELED, "canceled")], old
