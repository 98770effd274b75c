"""The KubeVirt VirtualMachine and VirtualMachineInstance CRDs, as far as the simulator needs them.

The schemas keep spec and status open (x-kubernetes-preserve-unknown-fields): the simulator
stands in for KubeVirt's controllers, not for its API validation. As in KubeVirt, the
VirtualMachine has a status subresource and the VirtualMachineInstance does not (its status is
written with the object).
"""

from __future__ import annotations

from typing import Any, Final

from cloudkit.api import names

VM_KIND: Final = "VirtualMachine"
VM_CRD_NAME: Final = f"{names.VM_PLURAL}.{names.KUBEVIRT_GROUP}"
VM_API_VERSION: Final = f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}"
VMI_KIND: Final = "VirtualMachineInstance"
VMI_CRD_NAME: Final = f"{names.VMI_PLURAL}.{names.KUBEVIRT_GROUP}"

_READY_COLUMN: Final = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
_AGE_COLUMN: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def vm_crd_manifest() -> dict[str, Any]:
    columns = [
        _AGE_COLUMN,
        {
            "name": "Status",
            "type": "string",
            "description": "Human readable status",
            "jsonPath": ".status.printableStatus",
        },
        _READY_COLUMN,
    ]
    return _crd(VM_KIND, names.VM_PLURAL, ["vm", "vms"], columns, status_subresource=True)


def vmi_crd_manifest() -> dict[str, Any]:
    columns = [
        _AGE_COLUMN,
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "IP", "type": "string", "jsonPath": ".status.interfaces[0].ipAddress"},
        {"name": "NodeName", "type": "string", "jsonPath": ".status.nodeName"},
        _READY_COLUMN,
    ]
    return _crd(VMI_KIND, names.VMI_PLURAL, ["vmi", "vmis"], columns, status_subresource=False)


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    columns: list[dict[str, Any]],
    *,
    status_subresource: bool,
) -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    version: dict[str, Any] = {
        "name": names.KUBEVIRT_VERSION,
        "served": True,
        "storage": True,
        "additionalPrinterColumns": columns,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": open_object,
                    "status": open_object,
                },
            }
        },
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{names.KUBEVIRT_GROUP}"},
        "spec": {
            "group": names.KUBEVIRT_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["all"],
            },
            "versions": [version],
        },
    }
