"""KubeVirt stand-in for the local stack: the VirtualMachine and VirtualMachineInstance CRDs and
a VM controller simulator.

Reached through the API server only, like the real KubeVirt: `start_vm_simulator(kubeconfig,
boot_seconds=..., stop_seconds=...)` registers the CRDs and drives VMs and their VMIs until
`stop()`. VMI addresses come from 10.200.0.0/16 (see states.py); they are data only.
"""

from cloudkit.local.kubevirt.crd import vm_crd_manifest, vmi_crd_manifest
from cloudkit.local.kubevirt.simulator import VmSimulatorHandle, start_vm_simulator
from cloudkit.local.kubevirt.states import VM_FINALIZER, VMI_NETWORK, vmi_address

__all__ = [
    "VMI_NETWORK",
    "VM_FINALIZER",
    "VmSimulatorHandle",
    "start_vm_simulator",
    "vm_crd_manifest",
    "vmi_address",
    "vmi_crd_manifest",
]
