"""Following a job the backend can be asked about: poll it when a poll is due, else come back.

The one poll tail of provisioning and deprovisioning (what differs between them, a job that
cannot be polled, stays with each). Adaptive (design §9): a reading younger than `first_poll`
is not re-read (`jobs.poll_wait`); past that, one poll per pass, and the next pass comes after
the backend's retry-after when it asked for one, else after `jobs.poll_delay`. When
authenticated job notifications bring each change as a reading (`config.job_notifications`),
the timed polls are the net for a lost one: they start at `notified_first_poll`, not
`first_poll` (`jobs.timed_poll_floor`).
"""

from __future__ import annotations

from cloudkit.api.jobs import JobType
from cloudkit.api.models import JobStatus
from cloudkit.lifecycle import jobs
from cloudkit.lifecycle.step import Step
from cloudkit.lifecycle.types import PollJob


def follow(step: Step, job_type: JobType, job: JobStatus) -> None:
    """Poll `job` (of `job_type`, observable, not finished) now if due and not polled yet in
    this pass; otherwise requeue for when the next poll is due."""
    floor = jobs.timed_poll_floor(step.config)
    wait = jobs.poll_wait(job, step.now, step.config, floor=floor)
    if wait is not None:
        step.requeue(wait)
        return
    if not step.polled(job.id):
        step.act(PollJob(job_type, job.id))
        return
    hint = step.retry_hint(job.id)
    step.requeue(hint or jobs.poll_delay(job, step.now, step.config, floor=floor))
