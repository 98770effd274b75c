"""Every label, annotation and finalizer name cloudkit reads or writes, identical to upstream's.

Existing playbooks and tooling match on these strings, so they are defined once, here.
"""

from typing import Final

GROUP: Final = "cloudkit.openshift.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ComputeInstance"
PLURAL: Final = "computeinstances"
SINGULAR: Final = "computeinstance"
SHORT_NAMES: Final = ("ci",)

PREFIX: Final = GROUP

# Finalizers
OPERATOR_FINALIZER: Final = f"{PREFIX}/computeinstance"
"""Held by the operator; removed once deprovisioning succeeded, was skipped or does not block."""
AUTOMATION_FINALIZER: Final = f"{PREFIX}/computeinstance-aap"
"""Set by the provisioning playbook, removed by the deprovisioning playbook (EDA contract)."""
FEEDBACK_FINALIZER: Final = f"{PREFIX}/computeinstance-feedback"

# Annotations
MANAGEMENT_STATE_ANNOTATION: Final = f"{PREFIX}/management-state"
MANAGEMENT_STATE_UNMANAGED: Final = "unmanaged"
MANAGEMENT_STATE_MANUAL: Final = "manual"
RECONCILED_CONFIG_VERSION_ANNOTATION: Final = f"{PREFIX}/reconciled-config-version"
TENANT_ANNOTATION: Final = f"{PREFIX}/tenant"
FLOATING_IP_ANNOTATION: Final = f"{PREFIX}/floating-ip-address"

# Labels
INSTANCE_UUID_LABEL: Final = f"{PREFIX}/computeinstance-uuid"
VM_INSTANCE_LABEL: Final = f"{PREFIX}/computeinstance"
"""On KubeVirt VirtualMachines: the name of the ComputeInstance that owns the VM."""

# KubeVirt
KUBEVIRT_GROUP: Final = "kubevirt.io"
KUBEVIRT_VERSION: Final = "v1"
VM_PLURAL: Final = "virtualmachines"
VMI_PLURAL: Final = "virtualmachineinstances"
