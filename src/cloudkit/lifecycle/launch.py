"""Exactly-once launches: record the intent, launch, and resume an intent found after a crash.

The intent (a job entry with a correlation id and no job id) is persisted by the shell before
the launch runs (invariant 4). An intent found at the start of a pass means the launch may or
may not have reached the backend, so a backend that can search by correlation id is asked
first (`unclaimed`), and only an intent older than the grace period that nobody knows of is
launched again, with the same correlation id (`resume`) or, at deletion, given up.
"""

from __future__ import annotations

from cloudkit.api.jobs import JobType
from cloudkit.api.models import JobStatus
from cloudkit.lifecycle import jobs
from cloudkit.lifecycle.step import Step
from cloudkit.lifecycle.types import FindJob, LaunchDeprovision, LaunchProvision


def _launch_action(job_type: JobType, correlation_id: str) -> LaunchProvision | LaunchDeprovision:
    if job_type is JobType.PROVISION:
        return LaunchProvision(correlation_id)
    return LaunchDeprovision(correlation_id)


def start(step: Step, job_type: JobType, *, config_version: str | None) -> JobStatus:
    """Record a new launch intent and ask the shell to launch it (after persisting it)."""
    uid = step.instance.metadata.uid or step.instance.metadata.name
    correlation_id = jobs.next_correlation_id(step.status, uid, job_type)
    verb = "provisioning" if job_type is JobType.PROVISION else "deprovisioning"
    job = jobs.record_intent(
        step.status,
        job_type,
        correlation_id=correlation_id,
        config_version=config_version,
        now=step.now,
        message=f"Launching {verb} job",
        config=step.config,
    )
    step.act(_launch_action(job_type, correlation_id))
    return job


def unclaimed(step: Step, job_type: JobType, job: JobStatus) -> bool:
    """Drive an intent one step towards knowing whether its launch reached the backend.

    True when nobody has it: a backend that can search found no job with its correlation id
    (and the intent is older than the lookup grace, in case the backend records jobs late), or
    the backend cannot search. Otherwise this arranges the next step (a lookup, or a requeue
    after a failed launch or lookup) and returns False.
    """
    cid = job.correlation_id
    launched = step.launch_outcome(cid)
    if launched is not None:
        # This pass already tried; a retryable failure comes back after a growing delay, or
        # when the backend said (rate limit).
        hint = launched.failure.retry_after if launched.failure is not None else None
        step.requeue(hint or jobs.poll_delay(job, step.now, step.config))
        return False
    caps = step.config.capabilities
    lookup = step.lookup_outcome(cid)
    if caps.finds_jobs and lookup is None:
        step.act(FindJob(job_type, cid or "", job.launched_at or step.now))
        return False
    if lookup is not None and lookup.failure is not None:
        hint = lookup.failure.retry_after
        step.requeue(hint or jobs.poll_delay(job, step.now, step.config))
        return False
    age = step.now - (job.launched_at or step.now)
    if caps.finds_jobs and age < step.config.launch_lookup_grace:
        step.requeue(step.config.launch_lookup_grace - age)
        return False
    return True


def resume(step: Step, job_type: JobType, job: JobStatus) -> None:
    """Launch an intent again, with its own correlation id, once nobody has it."""
    cid = job.correlation_id
    assert cid is not None
    if unclaimed(step, job_type, job):
        step.act(_launch_action(job_type, cid))
