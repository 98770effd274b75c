"""KubeVirt stand-in for the local stack: the VirtualMachine CRD and a VM controller simulator.

Reached through the API server only, like the real KubeVirt: `start_vm_simulator(kubeconfig,
boot_seconds=..., stop_seconds=...)` registers the CRD and drives VMs until `stop()`.
"""

from cloudkit.local.kubevirt.crd import vm_crd_manifest
from cloudkit.local.kubevirt.simulator import (
    VM_FINALIZER,
    VmSimulatorHandle,
    start_vm_simulator,
)

__all__ = ["VM_FINALIZER", "VmSimulatorHandle", "start_vm_simulator", "vm_crd_manifest"]
