"""Which ComputeInstances a watch event concerns: the instance's own, its VMs', their VMIs'.

A VM carries the label cloudkit.openshift.io/computeinstance=<instance name>: a bare name, as
upstream, since the VM lives in a tenant namespace, not the instance's. The routes therefore
remember the namespaces in which each instance name exists. KubeVirt copies a VM's template
labels onto its VirtualMachineInstance and names the VMI as the VM; a VMI without the label
(a VM whose template has none) is traced through the VM of the same namespace and name.
Pure bookkeeping: the shell feeds it events and reconciles the keys it answers, in the lane
`instance_priority` gives an instance's event (a burst of creates must not starve the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudkit.api import names
from cloudkit.lifecycle.provision import WAITING_FOR_LAUNCH_SLOT
from cloudkit.operator.kube_objects import InstanceKey, ObjectKey
from cloudkit.operator.settings import PollPolicy
from cloudkit.operator.workqueue import Priority

VM_SETTLE_S = 0.5
"""How long a VM or VMI change waits before its instance's pass, for the changes that follow it.

KubeVirt changes a VM, its VMI and their statuses in quick succession (created, Starting; the
address and Ready; Terminating, gone), each a watch event. Their pass runs once they settle,
so one status write carries them all instead of one write each. Nothing waits on them but the
Available condition and the address: the job's progress, Ready and the deletion come from the
instance's own events and the job notifications, which wake it at once (and an earlier wake-up
takes the VM's changes along)."""


def vm_settle_s(policy: PollPolicy) -> float:
    """The settle window of a VM or VMI change under `policy`: VM_SETTLE_S under ours, none
    under upstream's (reference §3.1: a labelled VM's change wakes its instance at once). The
    baseline must not wait where upstream does not: under `fixed` every pass polls the job, so
    a window would both delay and merge passes that poll, and slow the baseline down."""
    return 0.0 if policy is PollPolicy.FIXED else VM_SETTLE_S


def instance_priority(obj: Mapping[str, Any]) -> Priority:
    """The lane of an instance's watch event: HIGH for a deletion (cleanup first), LOW for an
    instance not yet taken in hand (no status or no finalizer of ours: a burst of creates, the
    initial list) or waiting for a launch slot (the slots wake it), NORMAL for the rest."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Priority.HIGH
    status = obj.get("status") or {}
    if not status or names.OPERATOR_FINALIZER not in (metadata.get("finalizers") or []):
        return Priority.LOW
    waiting = any(
        c.get("type") == "Progressing" and c.get("reason") == WAITING_FOR_LAUNCH_SLOT
        for c in status.get("conditions") or []
    )
    return Priority.LOW if waiting else Priority.NORMAL


@dataclass
class Routes:
    namespace: str | None = None
    """The only namespace whose instances are reconciled (CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE),
    or None for all."""
    vm_settle_s: float = VM_SETTLE_S
    """How long a VM's or VMI's change waits before its instances' pass (`vm_settle_s`)."""
    _namespaces_by_name: dict[str, set[str]] = field(default_factory=dict)
    _instance_by_vm: dict[ObjectKey, str] = field(default_factory=dict)
    """VM (namespace, name) → the instance name on its label, for unlabelled VMIs."""

    def watches(self, namespace: str | None) -> bool:
        return self.namespace is None or namespace == self.namespace

    def instance_event(self, namespace: str, name: str, *, deleted: bool) -> InstanceKey | None:
        """The instance to reconcile, or None when it is outside the watched namespace."""
        if not self.watches(namespace):
            return None
        known = self._namespaces_by_name.setdefault(name, set())
        if deleted:
            known.discard(namespace)
            if not known:
                del self._namespaces_by_name[name]
        else:
            known.add(namespace)
        return InstanceKey(namespace, name)

    def vm_event(
        self, namespace: str, name: str, labels: Mapping[str, str], *, deleted: bool
    ) -> list[InstanceKey]:
        """The instances a VM change concerns (the one named on its label)."""
        instance = labels.get(names.VM_INSTANCE_LABEL)
        if deleted or not instance:
            self._instance_by_vm.pop((namespace, name), None)
        else:
            self._instance_by_vm[(namespace, name)] = instance
        return self._keys(instance)

    def vmi_event(self, namespace: str, name: str, labels: Mapping[str, str]) -> list[InstanceKey]:
        """The instances a VirtualMachineInstance change concerns: by its label (copied from
        the VM's template), else through the VM it is named after."""
        instance = labels.get(names.VM_INSTANCE_LABEL) or self._instance_by_vm.get(
            (namespace, name)
        )
        return self._keys(instance)

    def _keys(self, instance: str | None) -> list[InstanceKey]:
        if not instance:
            return []
        if self.namespace is not None:
            return [InstanceKey(self.namespace, instance)]
        namespaces = sorted(self._namespaces_by_name.get(instance, ()))
        return [InstanceKey(namespace, instance) for namespace in namespaces]
