"""A ComputeInstance is data end to end: the real operator on the local stack, both providers.

One instance per provider carries a Jinja template that would touch its own marker file in
every string field its schema lets hold one; it must become Ready with the literal strings on
its VirtualMachine, and be deleted, without any template running. Through AAP direct the
automation service marks the payload `!unsafe` (as AWX does); through EDA, ansible-rulebook
hands it to the playbook as templatable extra vars, and the playbooks take it as data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.waiting import until

pytestmark = pytest.mark.stack

NAME = "hostile"
CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
# Generous: a two-core machine shared with other tests, and the EDA rule engine's JVM.
READY_WITHIN_S = 180.0


def jinja(markers: Path, field: str) -> str:
    """A template that touches its own marker file if anything renders it."""
    return f"{{{{ lookup('ansible.builtin.pipe', 'touch {markers / field}') }}}}"


def leaked(markers: Path) -> list[str]:
    return sorted(path.name for path in markers.iterdir())


def hostile_instance(markers: Path) -> dict[str, Any]:
    """Jinja in every string the schema leaves free. metadata.name, label keys and values,
    annotation keys and finalizers are DNS-style names and cannot hold `{`, `'` or `(`;
    templateID has a pattern; image.sourceType and runStrategy are enums."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": NAME,
            "annotations": {
                "example.com/note": jinja(markers, "annotation"),
                # Becomes status.tenantReference.name in the payload the operator sends.
                names.TENANT_ANNOTATION: jinja(markers, "tenant"),
            },
        },
        "spec": {
            "templateID": "sample_template",
            "image": {"sourceType": "registry", "sourceRef": jinja(markers, "image")},
            "templateParameters": json.dumps(
                {
                    jinja(markers, "parameter-key"): jinja(markers, "parameter-value"),
                    "memory": jinja(markers, "parameter-memory"),
                }
            ),
            "sshKey": jinja(markers, "ssh-key"),
            "userDataSecretRef": {"name": jinja(markers, "user-data")},
            "bootDisk": {"sizeGiB": 10, "storageClass": jinja(markers, "boot-disk")},
            "additionalDisks": [{"sizeGiB": 1, "storageClass": jinja(markers, "disk")}],
        },
    }


def phase(instance: dict[str, Any] | None) -> str | None:
    return ((instance or {}).get("status") or {}).get("phase")


@pytest.mark.parametrize("provider", ["aap", "eda"])
async def test_a_hostile_instance_is_provisioned_and_deleted_as_data(
    provider: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    stack: StackHandle = await start_stack(
        provider=provider,
        state_dir=tmp_path / "state",
        vm_boot_seconds=0.5,
        with_fulfillment=False,  # not on the path from the instance to the playbooks
    )
    try:
        async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
            await kube.create(CI_PATH, hostile_instance(markers))
            ready = await until(
                lambda: kube.get(f"{CI_PATH}/{NAME}"),
                lambda ci: phase(ci) in {"Ready", "Failed"},
                within=READY_WITHIN_S,
                what="phase Ready",
                interval=0.2,
            )
            assert leaked(markers) == []
            assert phase(ready) == "Ready", ready["status"].get("provisionJob")

            tenant_namespace = ready["status"]["tenantReference"]["namespace"]
            vm = await kube.get(
                resource_path(
                    names.KUBEVIRT_GROUP,
                    names.KUBEVIRT_VERSION,
                    names.VM_PLURAL,
                    namespace=tenant_namespace,
                    name=NAME,
                )
            )
            assert vm is not None
            template = vm["spec"]["template"]["spec"]
            assert template["volumes"][0]["containerDisk"]["image"] == jinja(markers, "image")
            assert ready["status"]["tenantReference"]["name"] == jinja(markers, "tenant")

            await kube.delete(f"{CI_PATH}/{NAME}")
            await until(
                lambda: kube.get(f"{CI_PATH}/{NAME}"),
                lambda ci: ci is None,
                within=READY_WITHIN_S,
                what="deletion",
                interval=0.2,
            )
            assert leaked(markers) == []
    finally:
        await stack.stop()
