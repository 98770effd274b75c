"""The live path: launch, follow and retry provisioning until the spec's config is applied.

"Applied" is the playbook's word, not ours: the reconciled-config-version annotation it writes
equals the spec's hash. A job is launched when the latest one is for an older config version
(or there is none), followed while it runs, and retried with back-off when it failed.
"""

from __future__ import annotations

from cloudkit.api import names
from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.api.models import ConditionType, Phase
from cloudkit.lifecycle import jobs, launch, poll
from cloudkit.lifecycle.conditions import set_condition
from cloudkit.lifecycle.step import Step
from cloudkit.lifecycle.types import AddFinalizer, EventType

EDA_COMPLETED = "Provisioning playbook completed (reconciled config version matches)"
WAITING_FOR_LAUNCH_SLOT = "WaitingForLaunchSlot"


def step_provision(step: Step) -> None:
    status = step.status
    gen = step.instance.metadata.generation
    if not step.has_finalizer(names.OPERATOR_FINALIZER):
        step.finalizers.append(AddFinalizer(names.OPERATOR_FINALIZER))
    desired = status.desired_config_version
    applied = _applied(step)
    job = status.provision_job
    manual = step.instance.management_state == names.MANAGEMENT_STATE_MANUAL

    if applied:
        _finish_applied(step)
        return

    status.phase = Phase.PROGRESSING
    set_condition(
        status,
        ConditionType.PROGRESSING,
        "True",
        "Provisioning",
        "Applying configuration",
        now=step.now,
        generation=gen,
    )
    if manual:
        set_condition(
            status,
            ConditionType.PROGRESSING,
            "True",
            "ManualManagement",
            "Managed manually: no provisioning job is launched",
            now=step.now,
            generation=gen,
        )
        return
    if job is None or (jobs.is_finished(job) and job.config_version != desired):
        if not _waiting_for_slot(step):
            launch.start(step, JobType.PROVISION, config_version=desired)
        return
    if jobs.is_intent(job):
        launch.resume(step, JobType.PROVISION, job)
        return
    if not jobs.is_finished(job):
        _follow(step)
        return
    if job.state is JobState.SUCCEEDED:
        # Done by the backend; the playbook's annotation (a watch event) completes it.
        step.requeue(step.config.poll_interval)
        return
    status.phase = Phase.FAILED
    set_condition(
        status,
        ConditionType.PROGRESSING,
        "False",
        "ProvisioningFailed",
        f"Provisioning job {job.id or '(not launched)'} {job.state.value}: {job.message}",
        now=step.now,
        generation=gen,
    )
    due = jobs.retry_at(status, JobType.PROVISION, step.config)
    if due is None or step.now >= due:
        if _waiting_for_slot(step):
            return
        step.event(EventType.NORMAL, "ProvisionRetry", "Retrying provisioning after a failure")
        launch.start(step, JobType.PROVISION, config_version=desired)
    else:
        step.requeue(due - step.now)


def _waiting_for_slot(step: Step) -> bool:
    """True (and the status says why) when a new launch must wait for a free slot.

    No intent, no I/O and no requeue: the shell wakes the instance when a slot frees. An
    intent already recorded (resumed after a crash) holds its slot and never gets here.
    """
    observation = step.observation
    if observation.launch_allowed:
        return False
    if step.status.provision_job is None and not step.status.jobs:
        # Nothing was ever launched, so there is nothing to clean up: the finalizer comes with
        # the first intent, and a deletion while waiting completes at once, launching nothing.
        adding = AddFinalizer(names.OPERATOR_FINALIZER)
        step.finalizers = [action for action in step.finalizers if action != adding]
    set_condition(
        step.status,
        ConditionType.PROGRESSING,
        "True",
        WAITING_FOR_LAUNCH_SLOT,
        f"Waiting to launch: {observation.launches_in_flight} provisioning jobs in flight, "
        f"the limit (CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT) is {observation.launch_limit}",
        now=step.now,
        generation=step.instance.metadata.generation,
    )
    return True


def _follow(step: Step) -> None:
    """Poll a running provision job (adaptive), or, for EDA, wait for the playbook to report."""
    job = step.status.provision_job
    assert job is not None
    if not jobs.observable(job, step.config):
        step.requeue(step.config.poll_interval)
        return
    poll.follow(step, JobType.PROVISION, job)


def _applied(step: Step) -> bool:
    """Applied ⇔ the playbook echoed the current version AND our latest job for it succeeded.

    Only the latest provision job counts (upstream 2026-05-10), so spec A→B→A re-provisions A
    once B's job is done. A job without a config version (upstream-era status) or no job at all
    (manual management) leaves the annotation as the only word. Jobs that cannot be polled (EDA)
    complete when the annotation names their version.
    """
    status = step.status
    desired = status.desired_config_version
    if desired is None or status.reconciled_config_version != desired:
        return False
    if step.config.poll_every_pass:
        # The baseline is upstream at the reference point (§3.2 step 6): the playbook's
        # annotation alone means applied; the job is then only followed to its end.
        return True
    job = status.provision_job
    if job is None or job.config_version is None:
        return True
    if job.config_version != desired or jobs.is_intent(job):
        return False
    if job.state is JobState.SUCCEEDED:
        return True
    return not jobs.observable(job, step.config) and not jobs.is_finished(job)


def _finish_applied(step: Step) -> None:
    status = step.status
    gen = step.instance.metadata.generation
    job = status.provision_job
    status.phase = Phase.READY
    set_condition(
        status,
        ConditionType.PROGRESSING,
        "False",
        "AsExpected",
        "Configuration applied",
        now=step.now,
        generation=gen,
    )
    if job is None or jobs.is_finished(job) or jobs.is_intent(job):
        return
    if not jobs.observable(job, step.config):
        # EDA cannot be polled; the annotation is the playbook's own word that it finished.
        jobs.apply_reading(job, JobReading(job.id, JobState.SUCCEEDED, EDA_COMPLETED), step.now)
        return
    _follow(step)
