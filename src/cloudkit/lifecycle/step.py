"""One decide() call's working state, and folding I/O outcomes into the status.

Outcomes of earlier I/O actions of the same reconcile pass arrive with every call, and the
instance passed in may already reflect some of them (the shell persisted the status after each
decision). Folding is therefore idempotent: applying the same outcomes again in order leaves
the status as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloudkit.api import names
from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.api.models import ComputeInstance, ComputeInstanceStatus, JobStatus
from cloudkit.lifecycle import jobs
from cloudkit.lifecycle.types import (
    CancelOutcome,
    Decision,
    EventType,
    Failure,
    IOAction,
    LaunchOutcome,
    LifecycleConfig,
    LookupOutcome,
    MetadataAction,
    Observation,
    PollOutcome,
    RecordEvent,
)


@dataclass
class Step:
    instance: ComputeInstance
    observation: Observation
    now: datetime
    config: LifecycleConfig
    status: ComputeInstanceStatus
    finalizers: list[MetadataAction] = field(default_factory=list)
    io: IOAction | None = None
    events: list[RecordEvent] = field(default_factory=list)
    requeues: list[timedelta] = field(default_factory=list)

    # --- what this pass already did --------------------------------------------------------

    def polled(self, job_id: str) -> bool:
        return any(isinstance(o, PollOutcome) and o.job_id == job_id for o in self.outcomes)

    def retry_hint(self, job_id: str) -> timedelta | None:
        """The backend's retry-after from a failed poll of this job in this pass (rate limit)."""
        for outcome in reversed(self.outcomes):
            if isinstance(outcome, PollOutcome) and outcome.job_id == job_id:
                return outcome.failure.retry_after if outcome.failure is not None else None
        return None

    def cancel_outcome(self, job_id: str) -> CancelOutcome | None:
        found = [o for o in self.outcomes if isinstance(o, CancelOutcome) and o.job_id == job_id]
        return found[-1] if found else None

    def launch_outcome(self, correlation_id: str | None) -> LaunchOutcome | None:
        found = [
            o
            for o in self.outcomes
            if isinstance(o, LaunchOutcome) and o.correlation_id == correlation_id
        ]
        return found[-1] if found else None

    def lookup_outcome(self, correlation_id: str | None) -> LookupOutcome | None:
        found = [
            o
            for o in self.outcomes
            if isinstance(o, LookupOutcome) and o.correlation_id == correlation_id
        ]
        return found[-1] if found else None

    @property
    def outcomes(self) -> tuple[object, ...]:
        return self.observation.outcomes

    # --- building the decision -------------------------------------------------------------

    def act(self, action: IOAction) -> None:
        if self.io is None:
            self.io = action

    def requeue(self, delay: timedelta) -> None:
        self.requeues.append(max(delay, timedelta(0)))

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append(RecordEvent(type_, reason, message))

    def has_finalizer(self, name: str) -> bool:
        return name in self.instance.metadata.finalizers

    def decision(self) -> Decision:
        for job_type in JobType:
            jobs.sync_history(self.status, job_type, self.config)
        requeue = None if self.io is not None or not self.requeues else min(self.requeues)
        return Decision(
            status=self.status,
            finalizers=tuple(self.finalizers),
            io=self.io,
            events=tuple(self.events),
            requeue_after=requeue,
        )


def _job_for(step: Step, job_type: JobType) -> JobStatus | None:
    return jobs.current(step.status, job_type)


def _failure_text(failure: Failure) -> str:
    return failure.message


def fold_outcomes(step: Step) -> None:
    """Apply the readings notifications brought, then every outcome of this pass, oldest first,
    to the working status (a poll of this pass is newer than any notification it started
    with)."""
    for reading in step.observation.notified:
        _fold_notified(step, reading)
    for outcome in step.observation.outcomes:
        if isinstance(outcome, LaunchOutcome):
            _fold_launch(step, outcome)
        elif isinstance(outcome, PollOutcome):
            _fold_poll(step, outcome)
        elif isinstance(outcome, CancelOutcome):
            _fold_cancel(step, outcome)
        elif isinstance(outcome, LookupOutcome):
            _fold_lookup(step, outcome)


def _fold_launch(step: Step, outcome: LaunchOutcome) -> None:
    job = _job_for(step, outcome.job_type)
    if job is None or job.correlation_id != outcome.correlation_id:
        return
    if outcome.waiting:
        _fold_launch_deferred(step, outcome)
    elif outcome.reading is not None:
        _fold_launched(step, job, outcome, outcome.reading)
    elif outcome.failure is not None and not job.id:
        _fold_refused_launch(step, outcome.job_type, job, outcome.failure)


def _fold_launched(step: Step, job: JobStatus, outcome: LaunchOutcome, reading: JobReading) -> None:
    """The backend took the launch: the intent becomes the job, with its first reading."""
    if job.id:
        return  # folded by an earlier decision of this pass; later readings supersede it
    verb = "provisioning" if outcome.job_type is JobType.PROVISION else "deprovisioning"
    step.event(
        EventType.NORMAL,
        f"{outcome.job_type.value.capitalize()}JobLaunched",
        f"Launched {verb} job {reading.job_id} via {step.config.provider_name}",
    )
    jobs.apply_reading(job, reading, step.now, block=outcome.block_deletion_on_failure)


def _fold_launch_deferred(step: Step, outcome: LaunchOutcome) -> None:
    """The provider refused to deprovision yet: its reading is of the provision job."""
    prov = step.status.provision_job
    if outcome.reading is not None and prov is not None and prov.id == outcome.reading.job_id:
        jobs.apply_reading(prov, outcome.reading, step.now)


def _fold_refused_launch(step: Step, job_type: JobType, job: JobStatus, failure: Failure) -> None:
    """A launch the backend did not take: retried now (retryable) or after the back-off.

    A refused deprovision launch blocks the deletion whatever the provider's policy: no cleanup
    ran, so the VM may still exist (invariant 5). Fixing the template in the backend is enough
    to let the deletion complete: the launch is retried with the failed-cleanup back-off.
    """
    verb = "provisioning" if job_type is JobType.PROVISION else "deprovisioning"
    text = f"Failed to trigger {verb}: {_failure_text(failure)}"
    if failure.retryable:
        job.message = f"{text}; will retry"
        step.event(EventType.WARNING, "LaunchFailed", text)
        return
    if job.state != JobState.FAILED:
        job.state_changed_at = step.now
        job.finished_at = step.now
    job.state = JobState.FAILED
    job.message = text
    # The back-off runs from this refused attempt, not from an intent resumed after a crash.
    job.launched_at = step.now
    if job_type is JobType.DEPROVISION:
        job.block_deletion_on_failure = True
        job.message = f"{text}; deletion is blocked until deprovisioning succeeds (will retry)"
        step.event(EventType.WARNING, "DeprovisionLaunchFailed", job.message)
        return
    step.event(EventType.WARNING, "LaunchFailed", text)


def _fold_poll(step: Step, outcome: PollOutcome) -> None:
    job = _job_for(step, outcome.job_type)
    if job is None or job.id != outcome.job_id:
        return
    if outcome.reading is not None:
        _take_reading(step, outcome.job_type, job, outcome.reading)
    elif outcome.failure is not None:
        job.message = f"Failed to get job status: {_failure_text(outcome.failure)}"


def _fold_notified(step: Step, reading: JobReading) -> None:
    """A notification's reading, taken as a poll's would be where it is news for the current
    job of its id (`jobs.moves_forward`): a stale or foreign one changes nothing."""
    for job_type in JobType:
        job = _job_for(step, job_type)
        if job is not None and jobs.moves_forward(job, reading):
            _take_reading(step, job_type, job, reading)
            return


def _take_reading(step: Step, job_type: JobType, job: JobStatus, reading: JobReading) -> None:
    old_state = job.state
    jobs.apply_reading(job, reading, step.now)
    # An Event when the job ends (or its state is lost), not at each step of its progress:
    # Pending, Waiting and Running show in the status; one Event fewer per step per job.
    if job.state != old_state and (job.state.terminal or job.state is JobState.UNKNOWN):
        kind = EventType.WARNING if job.state is JobState.FAILED else EventType.NORMAL
        step.event(
            kind,
            f"{job_type.value.capitalize()}Job{job.state.value}",
            f"{job_type.value.capitalize()} job {job.id} is {job.state.value}: {job.message}",
        )


def _fold_cancel(step: Step, outcome: CancelOutcome) -> None:
    job = step.status.provision_job
    if job is None or job.id != outcome.job_id:
        return
    if outcome.accepted and job.cancel_requested_at is None:
        job.cancel_requested_at = step.now
        step.event(EventType.NORMAL, "ProvisionJobCancelRequested", f"Canceling job {job.id}")
    elif outcome.failure is not None and not outcome.already_terminal:
        job.message = f"Failed to cancel job: {_failure_text(outcome.failure)}"


def _fold_lookup(step: Step, outcome: LookupOutcome) -> None:
    job = _job_for(step, outcome.job_type)
    if job is None or job.correlation_id != outcome.correlation_id or job.id:
        return
    if outcome.reading is not None:
        jobs.apply_reading(job, outcome.reading, step.now)
    elif outcome.failure is not None:
        job.message = f"Failed to look up launched job: {_failure_text(outcome.failure)}"


def reading_of(step: Step, job_type: JobType) -> JobReading | None:
    """The newest reading this pass produced for the current job of a type, if any."""
    job = _job_for(step, job_type)
    if job is None:
        return None
    for outcome in reversed(step.observation.outcomes):
        if isinstance(outcome, PollOutcome) and outcome.job_id == job.id:
            return outcome.reading
    return None


def has_automation_finalizer(step: Step) -> bool:
    return step.has_finalizer(names.AUTOMATION_FINALIZER)
