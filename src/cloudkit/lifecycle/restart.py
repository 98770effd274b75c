"""Restart requests (`spec.restartRequestedAt`): delete the VMI, done once KubeVirt re-created it.

Upstream's rules (reference §3.5), made observable: a request newer than `lastRestartedAt`
deletes the VirtualMachineInstance named as the VM (KubeVirt re-creates it for a running VM);
`RestartInProgress` is True from then on, and the restart is complete, `lastRestartedAt` set to
the request and both restart conditions removed, only once a VMI created after the request
exists. `RestartFailed` says why it could not be done: no VM to restart (`NoVMReference`), the
delete refused (`VMIDeletionFailed`), or the provisioning job the request caused failed (the
field is part of the config hash, so a restart also re-runs provisioning). The operator does
the restart itself rather than the playbook, so it works the same through both providers and
with playbooks that know nothing of restarts; each failure then has an observable cause.
"""

from __future__ import annotations

from datetime import datetime

from cloudkit.api.jobs import JobState
from cloudkit.api.models import ComputeInstanceStatus, ConditionType
from cloudkit.lifecycle import jobs
from cloudkit.lifecycle.conditions import get_condition, remove_condition, set_condition
from cloudkit.lifecycle.step import Step
from cloudkit.lifecycle.types import (
    EventType,
    RestartOutcome,
    RestartVirtualMachine,
    VirtualMachineObservation,
)

PROVISIONING_FAILED = "ProvisioningFailed"
VMI_DELETION_FAILED = "VMIDeletionFailed"


def clear_restart(status: ComputeInstanceStatus) -> None:
    remove_condition(status, ConditionType.RESTART_IN_PROGRESS)
    remove_condition(status, ConditionType.RESTART_FAILED)


def step_restart(step: Step) -> None:
    """Drive a pending restart request one step (the live path, after provisioning decided)."""
    status = step.status
    requested = step.instance.spec.restart_requested_at
    if requested is None or (
        status.last_restarted_at is not None and status.last_restarted_at >= requested
    ):
        clear_restart(status)
        return
    vms = step.observation.vms
    if vms is None:
        return  # VMs could not be listed: nothing is known, nothing changes
    vm = vms[0] if len(vms) == 1 else None
    in_progress = get_condition(status, ConditionType.RESTART_IN_PROGRESS)
    initiated = in_progress is not None and in_progress.status == "True"
    if vm is not None and _restarted(step, vm, requested, initiated=initiated):
        _complete(step, requested)
        return
    failed = get_condition(status, ConditionType.RESTART_FAILED)
    if initiated or (failed is not None and failed.reason == PROVISIONING_FAILED):
        _wait(step)  # the VMI was deleted for this request: never again, only wait
        return
    if failed is not None and failed.reason == VMI_DELETION_FAILED:
        since = step.now - (failed.last_transition_time or step.now)
        if since < step.config.poll_interval:
            step.requeue(step.config.poll_interval - since)
            return
    if vm is None:
        _fail(step, "NoVMReference", _no_vm_message(len(vms)))
        return
    outcome = _outcome(step, vm)
    if outcome is None:
        # One I/O action per decision: a launch decided this pass goes first, and the next
        # decision of the same pass comes back here.
        if step.io is None:
            step.act(RestartVirtualMachine(vm.namespace, vm.name))
    elif outcome.failure is not None:
        _fail(
            step,
            VMI_DELETION_FAILED,
            f"Could not delete VirtualMachineInstance {vm.namespace}/{vm.name}: "
            f"{outcome.failure.message}",
        )
        step.requeue(step.config.poll_interval)
    else:
        _start(step, _now_text(step.now))


def _restarted(
    step: Step, vm: VirtualMachineObservation, requested: datetime, *, initiated: bool
) -> bool:
    """Is the VMI one created after the request?

    Kubernetes timestamps have whole seconds, and KubeVirt may re-create a VMI within the
    second of the request, so once our delete ran (`initiated`), a VMI of that second counts;
    the observation of the pass that deleted it is older than the delete, so it never does. A
    VMI being deleted is reported without a creation time. Before any delete, a tie is not
    enough: restarting once more is safe, skipping a restart is not.
    """
    created = vm.vmi_created_at
    if created is None or _outcome(step, vm) is not None:
        return False
    if initiated:
        return created >= requested.replace(microsecond=0)
    return created > requested


def _outcome(step: Step, vm: VirtualMachineObservation) -> RestartOutcome | None:
    found = [
        o
        for o in step.outcomes
        if isinstance(o, RestartOutcome) and (o.namespace, o.name) == (vm.namespace, vm.name)
    ]
    return found[-1] if found else None


def _wait(step: Step) -> None:
    """Restart initiated: done when the new VMI shows (a watch event), unless provisioning the
    request failed meanwhile."""
    job = step.status.provision_job
    desired = step.status.desired_config_version
    if (
        job is not None
        and job.config_version == desired
        and jobs.is_finished(job)
        and job.state in {JobState.FAILED, JobState.CANCELED}
    ):
        _fail(
            step,
            PROVISIONING_FAILED,
            f"Provisioning job {job.id or '(not launched)'} {job.state.value}: {job.message}",
        )
        return
    step.requeue(step.config.poll_interval)


def _start(step: Step, when: str) -> None:
    gen = step.instance.metadata.generation
    remove_condition(step.status, ConditionType.RESTART_FAILED)
    set_condition(
        step.status,
        ConditionType.RESTART_IN_PROGRESS,
        "True",
        "RestartInProgress",
        f"Restart initiated at {when}",
        now=step.now,
        generation=gen,
    )
    step.event(EventType.NORMAL, "RestartInitiated", f"Restart initiated at {when}")
    step.requeue(step.config.poll_interval)


def _complete(step: Step, requested: datetime) -> None:
    step.status.last_restarted_at = requested
    clear_restart(step.status)
    step.event(EventType.NORMAL, "Restarted", "The VirtualMachineInstance was re-created")


def _fail(step: Step, reason: str, message: str) -> None:
    status = step.status
    previous = get_condition(status, ConditionType.RESTART_FAILED)
    remove_condition(status, ConditionType.RESTART_IN_PROGRESS)
    set_condition(
        status,
        ConditionType.RESTART_FAILED,
        "True",
        reason,
        message,
        now=step.now,
        generation=step.instance.metadata.generation,
    )
    if previous is None or previous.reason != reason:
        step.event(EventType.WARNING, "RestartFailed", message)


def _no_vm_message(count: int) -> str:
    if count == 0:
        return "No VirtualMachine to restart"
    return f"{count} VirtualMachines are labelled with this instance: which to restart is unclear"


def _now_text(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
