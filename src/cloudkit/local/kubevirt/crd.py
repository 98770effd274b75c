"""The KubeVirt VirtualMachine CustomResourceDefinition, as far as the simulator needs it.

The schema keeps spec and status open (x-kubernetes-preserve-unknown-fields): the simulator
stands in for KubeVirt's controllers, not for its API validation.
"""

from __future__ import annotations

from typing import Any, Final

from cloudkit.api import names

VM_KIND: Final = "VirtualMachine"
VM_CRD_NAME: Final = f"{names.VM_PLURAL}.{names.KUBEVIRT_GROUP}"
VM_API_VERSION: Final = f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}"


def vm_crd_manifest() -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": VM_CRD_NAME},
        "spec": {
            "group": names.KUBEVIRT_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": VM_KIND,
                "listKind": f"{VM_KIND}List",
                "plural": names.VM_PLURAL,
                "singular": "virtualmachine",
                "shortNames": ["vm", "vms"],
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": names.KUBEVIRT_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        },
                        {
                            "name": "Status",
                            "type": "string",
                            "description": "Human readable status",
                            "jsonPath": ".status.printableStatus",
                        },
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                    ],
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
            ],
        },
    }
