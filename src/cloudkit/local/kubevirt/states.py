"""What KubeVirt shows for a VirtualMachine and its VirtualMachineInstance: pure functions.

The simulator (simulator.py) decides and writes with these; nothing here does I/O.

A running VM has a VirtualMachineInstance as KubeVirt's VM controller makes one: same name and
namespace, the labels and annotations of `spec.template.metadata`, the template's spec, and a
controller owner reference to the VM (so the API server's garbage collector removes it with the
VM). Its `status.interfaces[0].ipAddress` comes from `vmi_address()`: a deterministic
address in 10.200.0.0/16, the subnet upstream gives each tenant's primary UserDefinedNetwork,
derived from the VM's namespace and name, so a re-created VMI keeps its address as a VM on a
persistent-IP network does. The address is data only: nothing ever connects to it, and two VMs
may (rarely) share one.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from cloudkit.local.kubevirt.crd import VM_API_VERSION, VM_KIND, VMI_KIND

VM_FINALIZER: Final = "kubevirt.io/virtualMachineControllerFinalize"
VMI_NETWORK: Final = ipaddress.IPv4Network("10.200.0.0/16")
"""Where simulated VMI addresses come from (upstream's tenant UDN subnet)."""
NODE_NAME: Final = "cloudkit-local"

Key = tuple[str, str]


class Goal(StrEnum):
    BOOT = "boot"
    HALT = "halt"
    FINALIZE = "finalize"


def run_strategy(vm: dict[str, Any]) -> str:
    """spec.runStrategy, else the legacy spec.running flag, else Always."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    if spec.get("running") is False:
        return "Halted"
    return "Always"


def goal_for(vm: dict[str, Any], *, has_vmi: bool = True) -> Goal | None:
    """The work a VM still needs, or None when its status already matches its spec.

    `has_vmi`: whether its VirtualMachineInstance exists; a running VM without one (it was
    deleted, which is how a restart is asked for) boots again.
    """
    meta = vm.get("metadata") or {}
    status = vm.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Goal.FINALIZE if VM_FINALIZER in (meta.get("finalizers") or []) else None
    if run_strategy(vm) == "Halted":
        stopped = status.get("printableStatus") == "Stopped" and not has_vmi
        return None if stopped else Goal.HALT
    if has_vmi and status.get("ready") is True and status.get("printableStatus") == "Running":
        return None
    return Goal.BOOT


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
        "lastProbeTime": None,
    }


# --- VirtualMachine status ------------------------------------------------------------------------


def _not_running() -> dict[str, Any]:
    return _ready("False", "GuestNotRunning", "Guest VM is not reported as running")


def starting_status() -> dict[str, Any]:
    return {
        "printableStatus": "Starting",
        "created": True,
        "ready": False,
        "conditions": [_not_running()],
    }


def running_status() -> dict[str, Any]:
    return {
        "printableStatus": "Running",
        "created": True,
        "ready": True,
        "conditions": [_ready("True", "")],
    }


def stopping_status(printable: str = "Stopping") -> dict[str, Any]:
    return {
        "printableStatus": printable,
        "created": True,
        "ready": False,
        "conditions": [_ready("False", "GuestNotRunning", "VMI is shutting down")],
    }


def stopped_status() -> dict[str, Any]:
    return {
        "printableStatus": "Stopped",
        "created": False,
        "ready": False,
        "conditions": [_ready("False", "VMINotExists", "VMI does not exist")],
    }


# --- VirtualMachineInstance ---------------------------------------------------------------------


def vmi_address(namespace: str, name: str) -> str:
    """The VMI's address: stable per VM, a host of VMI_NETWORK (never .0, .1 or broadcast)."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    hosts = VMI_NETWORK.num_addresses - 3  # network, gateway (.0.1) and broadcast excluded
    offset = 2 + int.from_bytes(digest[:8], "big") % hosts
    return str(VMI_NETWORK.network_address + offset)


def _mac(namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"mac:{namespace}/{name}".encode()).digest()
    # 02:... is a locally administered unicast address, as KubeVirt's pool hands out.
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def vmi_manifest(vm: dict[str, Any]) -> dict[str, Any]:
    """The VMI KubeVirt's VM controller creates for `vm`, booting (phase Scheduling)."""
    meta = vm.get("metadata") or {}
    template = (vm.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": VM_API_VERSION,
                "kind": VM_KIND,
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    return {
        "apiVersion": VM_API_VERSION,
        "kind": VMI_KIND,
        "metadata": metadata,
        "spec": dict(template.get("spec") or {}),
        "status": {
            "phase": "Scheduling",
            "conditions": [_not_running()],
        },
    }


def vmi_running_status(key: Key) -> dict[str, Any]:
    """A booted VMI: Running on the local node, one interface with its address."""
    namespace, name = key
    address = vmi_address(namespace, name)
    return {
        "phase": "Running",
        "nodeName": NODE_NAME,
        "conditions": [_ready("True", "")],
        "interfaces": [
            {
                "name": "default",
                "interfaceName": "eth0",
                "ipAddress": address,
                "ipAddresses": [address],
                "mac": _mac(namespace, name),
                "infoSource": "domain, guest-agent",
            }
        ],
    }
