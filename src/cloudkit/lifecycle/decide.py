"""decide(): one step of the lifecycle, from (instance, observation, now, config) to a Decision."""

from __future__ import annotations

from datetime import datetime

from cloudkit.api import names
from cloudkit.api.config_version import config_version
from cloudkit.api.copies import deep_copy
from cloudkit.api.models import (
    ComputeInstance,
    ConditionType,
    VirtualMachineReference,
)
from cloudkit.lifecycle.conditions import set_condition
from cloudkit.lifecycle.deprovision import step_deprovision
from cloudkit.lifecycle.provision import step_provision
from cloudkit.lifecycle.restart import step_restart
from cloudkit.lifecycle.step import Step, fold_outcomes
from cloudkit.lifecycle.tenant import tenant_reference
from cloudkit.lifecycle.types import Decision, EventType, LifecycleConfig, Observation


def decide(
    instance: ComputeInstance, observation: Observation, now: datetime, config: LifecycleConfig
) -> Decision:
    """The next step for this instance; pure, so every interleaving can be tested."""
    if instance.management_state == names.MANAGEMENT_STATE_UNMANAGED and not instance.deleting:
        return Decision(status=instance.status, ignored=True)
    step = Step(
        instance=instance,
        observation=observation,
        now=now,
        config=config,
        status=deep_copy(instance.status),  # decide never edits its input
    )
    fold_outcomes(step)
    _observe(step)
    if instance.deleting:
        step_deprovision(step)
    else:
        step_provision(step)
        step_restart(step)
    return step.decision()


def _observe(step: Step) -> None:
    """Facts every pass records: versions, tenant, accepted, VM availability."""
    status = step.status
    meta = step.instance.metadata
    gen = meta.generation
    status.observed_generation = gen
    status.desired_config_version = config_version(step.instance.spec)
    status.reconciled_config_version = meta.annotations.get(
        names.RECONCILED_CONFIG_VERSION_ANNOTATION
    )
    if status.tenant_reference is None:
        status.tenant_reference = tenant_reference(
            step.instance, step.config.tenant_namespace_prefix
        )
    set_condition(
        status, ConditionType.ACCEPTED, "True", "AsExpected", "", now=step.now, generation=gen
    )
    if not step.instance.deleting:
        set_condition(
            status, ConditionType.DELETING, "False", "AsExpected", "", now=step.now, generation=gen
        )
    vms = step.observation.vms
    if vms is None:
        return
    if len(vms) > 1:
        listed = ", ".join(f"{vm.namespace}/{vm.name}" for vm in vms)
        set_condition(
            status,
            ConditionType.AVAILABLE,
            "False",
            "MultipleVirtualMachines",
            f"More than one VirtualMachine is labelled with this instance: {listed}",
            now=step.now,
            generation=gen,
        )
        step.event(EventType.WARNING, "MultipleVirtualMachines", listed)
        return
    status.ip_address = vms[0].ip_address if len(vms) == 1 else None
    if not vms:
        status.virtual_machine_reference = None
        set_condition(
            status,
            ConditionType.AVAILABLE,
            "False",
            "NoVirtualMachine",
            "No VirtualMachine exists for this instance",
            now=step.now,
            generation=gen,
        )
        return
    vm = vms[0]
    status.virtual_machine_reference = VirtualMachineReference(
        namespace=vm.namespace, kube_virt_virtual_machine_name=vm.name
    )
    set_condition(
        status,
        ConditionType.AVAILABLE,
        "True" if vm.ready else "False",
        "VirtualMachineReady" if vm.ready else "VirtualMachineNotReady",
        vm.printable_status or ("Ready" if vm.ready else "Not ready"),
        now=step.now,
        generation=gen,
    )
