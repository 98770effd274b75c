"""Job bookkeeping: intents, readings, the bounded history, polling cadence and retry backoff.

Every function here edits a status in memory or computes a time; nothing decides policy. The
rule that makes status truthful lives in `apply_reading`: state and message are always taken
from the same reading and written together (invariant 2).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cloudkit.api.jobs import EDA_JOB_ID_PREFIX, JobReading, JobState, JobType
from cloudkit.api.models import ComputeInstanceStatus, JobRecord, JobStatus
from cloudkit.lifecycle.types import LifecycleConfig


def current(status: ComputeInstanceStatus, job_type: JobType) -> JobStatus | None:
    return status.provision_job if job_type is JobType.PROVISION else status.deprovision_job


def set_current(status: ComputeInstanceStatus, job_type: JobType, job: JobStatus | None) -> None:
    if job_type is JobType.PROVISION:
        status.provision_job = job
    else:
        status.deprovision_job = job


def is_finished(job: JobStatus | None) -> bool:
    """The job will never change again: its state is terminal, or the backend purged it.

    A purged job may have ended in any state; the callers decide what not knowing means.
    """
    return job is not None and (job.state.terminal or bool(job.purged))


def provider_of(job: JobStatus) -> str | None:
    """The provider that runs the job; None for a status written before jobs recorded it (then
    only an EDA id can be recognised as such)."""
    if job.provider:
        return job.provider
    return "eda" if job.id.startswith(EDA_JOB_ID_PREFIX) else None


def observable(job: JobStatus, config: LifecycleConfig) -> bool:
    """Can the configured provider poll (and cancel) this job? Only if it can poll at all and
    it is the one that runs the job: a job recorded before a provider switch cannot be asked."""
    return config.capabilities.polls_jobs and provider_of(job) in {None, config.provider_name}


def is_intent(job: JobStatus | None) -> bool:
    """A launch that was decided and persisted but has no backend job id (yet)."""
    return job is not None and not job.id and bool(job.correlation_id) and not is_finished(job)


def next_correlation_id(status: ComputeInstanceStatus, uid: str, job_type: JobType) -> str:
    """`<uid>-<type>-<n>`, n one above any seen: unique per launch even after history trims."""
    prefix = f"{uid}-{job_type.value}-"
    seen = [r.correlation_id for r in status.jobs if r.type is job_type]
    cur = current(status, job_type)
    if cur is not None:
        seen.append(cur.correlation_id)
    numbers = [
        int(cid[len(prefix) :])
        for cid in seen
        if cid and cid.startswith(prefix) and cid[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(numbers, default=0) + 1}"


def record_intent(
    status: ComputeInstanceStatus,
    job_type: JobType,
    *,
    correlation_id: str,
    config_version: str | None,
    now: datetime,
    message: str,
    config: LifecycleConfig,
) -> JobStatus:
    # The job being replaced keeps its last reading in the history (a retry must not leave a
    # finished job looking as it was when last synced).
    sync_history(status, job_type, config)
    # A deprovision intent carries the provider's blocking policy from the start: a job found
    # later by its correlation id (after a crash) never passes through a launch outcome.
    block = job_type is JobType.DEPROVISION and config.capabilities.block_deletion_on_failure
    job = JobStatus(
        id="",
        state=JobState.PENDING,
        message=message,
        block_deletion_on_failure=block,
        correlation_id=correlation_id,
        config_version=config_version,
        launched_at=now,
        state_changed_at=now,
        provider=config.provider_name,
    )
    set_current(status, job_type, job)
    status.jobs.append(
        JobRecord(
            job_id="",
            type=job_type,
            timestamp=now,
            state=job.state,
            message=message,
            block_deletion_on_failure=block,
            correlation_id=correlation_id,
            config_version=config_version,
            provider=config.provider_name,
        )
    )
    trim_history(status, config.max_job_history)
    return job


def apply_reading(
    job: JobStatus, reading: JobReading, now: datetime, *, block: bool | None = None
) -> bool:
    """Copy one reading into the job: state and message together. Returns True if it changed."""
    before = (job.id, job.state, job.message, job.purged)
    if reading.job_id:
        job.id = reading.job_id
    if reading.purged:
        job.purged = True
        job.message = reading.message or "job no longer exists in the backend (purged)"
    else:
        message = reading.message
        if reading.details and reading.state in {JobState.FAILED, JobState.CANCELED}:
            message = f"{message}: {reading.details}"
        if reading.state != job.state:
            job.state_changed_at = now
            if reading.state.terminal:
                job.finished_at = now
        job.state = reading.state
        job.message = message
    if block is not None:
        job.block_deletion_on_failure = block
    return before != (job.id, job.state, job.message, job.purged)


_PROGRESS = {
    JobState.PENDING: 0,
    JobState.WAITING: 1,
    JobState.RUNNING: 2,
    JobState.SUCCEEDED: 3,
    JobState.FAILED: 3,
    JobState.CANCELED: 3,
}
"""How far a job has come: AWX moves a job through pending, waiting and running to one end,
never back (Unknown, an unmapped status word, has no place)."""


def further_along(state: JobState, than: JobState) -> bool:
    """Whether a job in `state` has come further than one in `than` (False for Unknown: it has
    no place; anything known is further than Unknown)."""
    heard, known = _PROGRESS.get(state), _PROGRESS.get(than)
    return heard is not None and (known is None or heard > known)


def moves_forward(job: JobStatus, reading: JobReading) -> bool:
    """Whether a reading heard from a notification is news for the job: the same job id, and a
    state further along than the one recorded. A notification delivered late (after a poll or a
    later notification was recorded), an Unknown state, or a purged job's is not."""
    if not job.id or reading.job_id != job.id or job.purged:
        return False
    return further_along(reading.state, job.state)


def sync_history(status: ComputeInstanceStatus, job_type: JobType, config: LifecycleConfig) -> None:
    """Mirror the current job of a type into its history record (matched by correlation id)."""
    job = current(status, job_type)
    if job is None:
        return
    for record in reversed(status.jobs):
        if record.type is job_type and (
            (job.correlation_id and record.correlation_id == job.correlation_id)
            or (job.id and record.job_id == job.id)
        ):
            record.job_id = job.id
            record.state = job.state
            record.message = job.message
            record.block_deletion_on_failure = job.block_deletion_on_failure
            record.finished_at = job.finished_at
            record.provider = job.provider
            return
    status.jobs.append(
        JobRecord(
            job_id=job.id,
            type=job_type,
            timestamp=job.launched_at or job.state_changed_at or datetime.min,
            state=job.state,
            message=job.message,
            block_deletion_on_failure=job.block_deletion_on_failure,
            correlation_id=job.correlation_id,
            config_version=job.config_version,
            finished_at=job.finished_at,
            provider=job.provider,
        )
    )
    trim_history(status, config.max_job_history)


def trim_history(status: ComputeInstanceStatus, limit: int) -> None:
    """Keep the newest `limit` records, never dropping a current job or the last success."""
    if len(status.jobs) <= limit:
        return
    protected: set[int] = set()
    for job_type in JobType:
        cur = current(status, job_type)
        for i in range(len(status.jobs) - 1, -1, -1):
            rec = status.jobs[i]
            if (
                rec.type is job_type
                and cur is not None
                and rec.correlation_id == cur.correlation_id
            ):
                protected.add(i)
                break
    for i in range(len(status.jobs) - 1, -1, -1):
        rec = status.jobs[i]
        if rec.type is JobType.PROVISION and rec.state is JobState.SUCCEEDED:
            protected.add(i)
            break
    order = sorted(range(len(status.jobs)), key=lambda i: status.jobs[i].timestamp, reverse=True)
    keep = set(order[:limit]) | protected
    status.jobs = [rec for i, rec in enumerate(status.jobs) if i in keep]


def timed_poll_floor(config: LifecycleConfig) -> timedelta:
    """The least age of a job's reading before a timed poll re-reads it: `first_poll`, or
    `notified_first_poll` when notifications bring the readings and polls are only their net
    (never past `poll_interval`: the configured interval stays the ceiling)."""
    if config.job_notifications:
        return max(config.first_poll, min(config.notified_first_poll, config.poll_interval))
    return config.first_poll


def poll_delay(
    job: JobStatus, now: datetime, config: LifecycleConfig, *, floor: timedelta | None = None
) -> timedelta:
    """Next poll: clamp(age_in_state / 2, floor, poll_interval); `floor` is `first_poll` unless
    given (`timed_poll_floor`).

    Sub-second right after a launch or state change, then the gap grows geometrically (each
    poll waits half the time the job has already spent in its state) while nothing changes; the
    configured interval is a ceiling, not the latency (design §9).
    """
    if config.poll_every_pass:
        return config.poll_interval
    since = job.state_changed_at or job.launched_at or now
    if job.cancel_requested_at is not None and job.cancel_requested_at > since:
        since = job.cancel_requested_at
    age = max(now - since, timedelta(0))
    first = config.first_poll if floor is None else floor
    return min(max(age / 2, first), config.poll_interval)


def poll_wait(
    job: JobStatus, now: datetime, config: LifecycleConfig, *, floor: timedelta | None = None
) -> timedelta | None:
    """How long a reading stays fresh: None when a poll is due now.

    A reading younger than `floor` (`first_poll` unless given: the state just changed, or the
    job was just launched) is not re-read; past that, a pass may poll once. The last poll time
    is not persisted (a status write per poll would cost more than the poll), so the geometric
    schedule is carried by the requeue delays (`poll_delay`) and by the one-poll-per-pass rule.
    """
    if config.poll_every_pass:
        return None
    first = config.first_poll if floor is None else floor
    since = job.state_changed_at or job.launched_at
    if since is None or now - since >= first:
        return None
    return since + first - now


def retry_at(
    status: ComputeInstanceStatus, job_type: JobType, config: LifecycleConfig
) -> datetime | None:
    """When a failed job of this type may be launched again (upstream's later backoff rule).

    The first retry comes retry_backoff_min after the failed launch; each next one after twice
    the gap between the last two failed launches, clamped to [min, max].
    """
    job = current(status, job_type)
    if job is None or job.launched_at is None:
        return None
    failed = sorted(
        r.timestamp
        for r in status.jobs
        if r.type is job_type
        and r.state in {JobState.FAILED, JobState.CANCELED}
        and r.config_version == job.config_version
    )
    if len(failed) < 2:
        delay = config.retry_backoff_min
    else:
        delay = 2 * (failed[-1] - failed[-2])
        delay = min(max(delay, config.retry_backoff_min), config.retry_backoff_max)
    return job.launched_at + delay
