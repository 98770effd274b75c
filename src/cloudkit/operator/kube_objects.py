"""What the operator reads out of Kubernetes objects, and the bodies it sends: pure functions.

Plain dicts in (as the API server serves them), domain values out: the instance's key, a VM's
observation for the lifecycle core (readiness, its VMI's creation time and address), how few
requests find the VMIs of some VMs, what an error answer says (its message, its Retry-After),
and the resourceVersion-guarded finalizer patch. No client, no sockets: kube.py does the I/O
with these, and the unit tests check them without a server.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudkit.lifecycle.types import VirtualMachineObservation

STATUS_MESSAGE_LIMIT = 300
"""Characters of a server's Status message kept in an error (a status message is bounded)."""


@dataclass(frozen=True, slots=True)
class InstanceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


ObjectKey = tuple[str, str]
"""(namespace, name) of a namespaced object."""


def object_key(obj: dict[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def vm_observation(
    vm: dict[str, Any], vmi: dict[str, Any] | None = None
) -> VirtualMachineObservation:
    """Readiness from the VM's Ready condition; the printable status as KubeVirt shows it;
    creation time and address from `vmi`, its VirtualMachineInstance (None: there is none).
    """
    status = vm.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    )
    namespace, name = object_key(vm)
    return VirtualMachineObservation(
        name=name,
        namespace=namespace,
        ready=ready or bool(status.get("ready")),
        printable_status=str(status.get("printableStatus") or ""),
        vmi_created_at=vmi_created_at(vmi),
        ip_address=vmi_ip_address(vmi),
    )


def vmi_created_at(vmi: dict[str, Any] | None) -> datetime | None:
    """The VMI's creationTimestamp (set by the API server); None without one or unreadable,
    and None for a VMI being deleted (KubeVirt shuts the guest down first): it is the old one,
    whatever its timestamp, and a restart must not be taken as done on its account."""
    metadata = (vmi or {}).get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return None
    raw = metadata.get("creationTimestamp")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def vmi_ip_address(vmi: dict[str, Any] | None) -> str | None:
    """The first address among the VMI's `status.interfaces` (`ipAddress`, else the first of
    `ipAddresses`), in interface order; None when no interface reports one."""
    interfaces = ((vmi or {}).get("status") or {}).get("interfaces") or []
    for interface in interfaces:
        if not isinstance(interface, dict):
            continue
        address = interface.get("ipAddress")
        if not address:
            listed = interface.get("ipAddresses") or []
            address = listed[0] if isinstance(listed, list) and listed else None
        if isinstance(address, str) and address:
            return address
    return None


@dataclass(frozen=True, slots=True)
class VmListing:
    """VMs as one list returned them, the VMI of each that has one, and the list's version."""

    vms: list[dict[str, Any]]
    vmis: dict[ObjectKey, dict[str, Any]]
    resource_version: str | None

    def observations(self) -> tuple[VirtualMachineObservation, ...]:
        return tuple(vm_observation(vm, self.vmis.get(object_key(vm))) for vm in self.vms)


def vmi_lookups(vms: Iterable[ObjectKey]) -> dict[str, list[str]]:
    """Per namespace, the VM names whose VMIs to read: one GET where a namespace holds one
    VM, one list of the namespace's VMIs where it holds several (fewest requests either way)."""
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for namespace, name in vms:
        by_namespace[namespace].append(name)
    return dict(by_namespace)


def status_message(body: Any, reason: str | None) -> str:
    """The `message` of a Status answer (`body`: bytes or text), else the HTTP reason."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:STATUS_MESSAGE_LIMIT]
    return str(reason or "")


def retry_after(headers: Any) -> timedelta | None:
    """The Retry-After header (whole seconds, as the API server sends it on a 429 or 503) of
    `headers` (any mapping: the client hands over a multidict, or None); None without one."""
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return timedelta(seconds=max(0, int(value))) if value is not None else None
    except (TypeError, ValueError):
        return None


def describe(obj: Mapping[str, Any]) -> str:
    """`namespace/name` of an object, for messages."""
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def finalizers_patch(obj: Mapping[str, Any], finalizers: list[str]) -> list[dict[str, Any]]:
    """A JSON patch setting the finalizer list, applied only to the version `obj` was read at:
    its first operation tests the resourceVersion, so if the object changed since, the whole
    patch fails (422) and nothing is lost or duplicated."""
    return [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": obj["metadata"]["resourceVersion"],
        },
        {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
    ]
