"""The delete path: stop provisioning, deprovision once, release the finalizer only when clean.

Order is the whole point (upstream's three 2026-02-10 bugs were ordering bugs):
1. a provision job that is still running is canceled, and followed until the backend reports
   it terminal; its reading (state and message together) is in the status from then on;
2. only then is one deprovision job launched (its intent is recorded in a later or the same
   write as that terminal reading, never an earlier one);
3. the operator finalizer goes when deprovisioning succeeded, was skipped, or failed without
   blockDeletionOnFailure; a blocking failure is retried with back-off. Success is the
   backend's verdict, or the deprovision playbook's last mark (`_cleanup_marked`).
"""

from __future__ import annotations

from cloudkit.api import names
from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.api.models import ConditionType, JobStatus, Phase
from cloudkit.lifecycle import jobs, launch, poll
from cloudkit.lifecycle.conditions import set_condition
from cloudkit.lifecycle.restart import clear_restart
from cloudkit.lifecycle.step import Step, has_automation_finalizer
from cloudkit.lifecycle.types import (
    CancelJob,
    EventType,
    LaunchOutcome,
    PollJob,
    RemoveFinalizer,
)

ABANDONED = "canceled before launch: the instance was deleted and no job was found"
EDA_DONE = "AAP playbook completed (finalizer removed)"
EDA_WAITING = "Waiting for AAP playbook to complete"
CLEANUP_MARKED = (
    "deprovisioning playbook removed the automation finalizer and no VirtualMachine is left"
)


def step_deprovision(step: Step) -> None:
    status = step.status
    status.phase = Phase.DELETING
    set_condition(
        status,
        ConditionType.DELETING,
        "True",
        "Deleting",
        "Deprovisioning the instance",
        now=step.now,
        generation=step.instance.metadata.generation,
    )
    # Conditions of the live path no longer apply: nothing is provisioned or restarted now.
    set_condition(
        status,
        ConditionType.PROGRESSING,
        "False",
        "Deleting",
        "The instance is being deleted",
        now=step.now,
        generation=step.instance.metadata.generation,
    )
    clear_restart(status)
    if not step.has_finalizer(names.OPERATOR_FINALIZER):
        return
    # `unmanaged` stops the operator from changing a live instance, but a deletion still
    # deprovisions (upstream since 2026): releasing at once would leave its VM behind.
    if step.instance.management_state == names.MANAGEMENT_STATE_MANUAL:
        _release(step, "management-state manual: nothing is deprovisioned")
        return
    if not _provision_settled(step):
        return
    _drive_deprovision(step)


def _provision_settled(step: Step) -> bool:
    """True once no provision job can still change anything (canceled if need be)."""
    job = step.status.provision_job
    caps = step.config.capabilities
    if job is None or jobs.is_finished(job):
        return True
    if not jobs.observable(job, step.config):
        return True  # nothing to ask: EDA jobs cannot be observed or canceled
    if jobs.is_intent(job):
        return _settle_intent(step, job)
    if not job.id:
        return True
    if caps.cancels_jobs:
        cancel = step.cancel_outcome(job.id)
        resend = (
            job.cancel_requested_at is not None
            and step.now - job.cancel_requested_at >= step.config.cancel_grace
        )
        if cancel is None and (job.cancel_requested_at is None or resend):
            if resend:
                job.cancel_requested_at = None  # recorded again when the backend accepts
            step.act(CancelJob(job.id))
            return False
    if not step.polled(job.id):
        step.act(PollJob(JobType.PROVISION, job.id))
        return False
    if jobs.is_finished(job):
        return True
    step.requeue(step.retry_hint(job.id) or jobs.poll_delay(job, step.now, step.config))
    return False


def _settle_intent(step: Step, job: JobStatus) -> bool:
    """An intended provision launch at deletion: find it, or give it up once nobody has it."""
    if not launch.unclaimed(step, JobType.PROVISION, job):
        return False
    jobs.apply_reading(job, JobReading("", JobState.CANCELED, ABANDONED), step.now)
    return True


def _drive_deprovision(step: Step) -> None:
    status = step.status
    caps = step.config.capabilities
    job = status.deprovision_job
    if job is None:
        if caps.deprovision_needs_automation_finalizer and not has_automation_finalizer(step):
            _release(step, "no automation finalizer: nothing was provisioned to deprovision")
            return
        _start(step)
        return
    outcome = step.launch_outcome(job.correlation_id)
    if outcome is not None and _launch_settled(step, outcome):
        return
    if jobs.is_intent(job):
        launch.resume(step, JobType.DEPROVISION, job)
        return
    if not jobs.is_finished(job):
        _follow(step, job)
        if not jobs.is_finished(job):
            return
    # A purged job whose success we never saw counts as failed (invariant 5): AWX purges only
    # finished jobs, but "finished" may have been a failure that left the VM behind.
    if job.state is JobState.SUCCEEDED:
        _release(step, f"deprovisioning job {job.id} {job.state.value}")
    elif not job.block_deletion_on_failure:
        _release(step, f"deprovisioning job {job.id} {job.state.value}; deletion not blocked")
    else:
        _retry(step, job)


def _start(step: Step) -> None:
    """Record a deprovision intent, with whether its playbook will find the automation
    finalizer to remove (what makes the removal this job's mark, `_cleanup_marked`)."""
    job = launch.start(step, JobType.DEPROVISION, config_version=step.status.desired_config_version)
    job.automation_finalizer_at_launch = has_automation_finalizer(step)


def _cleanup_marked(step: Step, job: JobStatus) -> bool:
    """AAP direct: has this job's playbook done the cleanup, by its own last mark?

    The deprovision playbook removes the automation finalizer only after every VM labelled
    with the instance is gone, as its last task; what follows (the play's end, the process
    exiting, the automation recording the job) cleans nothing up. So the finalizer's removal,
    when it was there at this job's launch and nothing else can add it back (the provision job
    is finished before any deprovision launch), is the playbook's word that cleanup succeeded,
    the same word EDA's deletion rests on. The shell reads the instance and its VMs fresh
    before a finalizer goes (`acts_on_reads`), and a VM still listed, or VMs that could not be
    listed, leave the decision to the job's verdict: a finalizer removed by hand with the VM
    still there proves nothing. A job whose playbook never saw the finalizer (it was absent
    at launch: a provision job canceled before it added one) has no such mark, and is
    followed to the backend's verdict as before.
    """
    return (
        bool(job.automation_finalizer_at_launch)
        and bool(job.id)
        and not has_automation_finalizer(step)
        and step.observation.vms == ()
    )


def _launch_settled(step: Step, outcome: LaunchOutcome) -> bool:
    """Handle the provider's skipped/waiting answers; True when this call is done."""
    if outcome.skipped:
        _release(step, "the provider says there is nothing to deprovision")
        return True
    if outcome.waiting:
        step.requeue(step.config.first_poll)
        return True
    return False


def _follow(step: Step, job: JobStatus) -> None:
    if not jobs.observable(job, step.config):
        # EDA: the deprovision playbook removes the automation finalizer when it is done.
        if has_automation_finalizer(step):
            jobs.apply_reading(job, JobReading(job.id, JobState.RUNNING, EDA_WAITING), step.now)
            step.requeue(step.config.poll_interval)
        else:
            jobs.apply_reading(job, JobReading(job.id, JobState.SUCCEEDED, EDA_DONE), step.now)
        return
    if _cleanup_marked(step, job):
        jobs.apply_reading(job, JobReading(job.id, JobState.SUCCEEDED, CLEANUP_MARKED), step.now)
        # The same Event as a success the backend reports (step._fold_poll), with the reason.
        step.event(
            EventType.NORMAL,
            "DeprovisionJobSucceeded",
            f"Deprovision job {job.id} is {job.state.value}: {job.message}",
        )
        return
    poll.follow(step, JobType.DEPROVISION, job)


def _retry(step: Step, job: JobStatus) -> None:
    due = jobs.retry_at(step.status, JobType.DEPROVISION, step.config)
    if due is None or step.now >= due:
        what = f"job {job.id} {job.state.value}" if job.id else "launch was refused"
        step.event(
            EventType.WARNING,
            "DeprovisionRetry",
            f"Deprovisioning {what}; retrying (deletion is blocked)",
        )
        _start(step)
    else:
        step.requeue(due - step.now)


def _release(step: Step, why: str) -> None:
    step.finalizers.append(RemoveFinalizer(names.OPERATOR_FINALIZER))
    if any(event.reason == "DeprovisionJobSucceeded" for event in step.events):
        return  # this step's own Event already says why: the deprovisioning job succeeded
    step.event(EventType.NORMAL, "FinalizerRemoved", f"Released the instance: {why}")
