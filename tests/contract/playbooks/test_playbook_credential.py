"""The cluster credential docs/wiring-aap.md gives the playbooks is enough for them.

provision.yml and deprovision.yml run by ansible-playbook under a ServiceAccount bound to
exactly the ClusterRole printed in the guide (parsed from it, so the guide and the test cannot
drift), against the local API server's RBAC and the VM simulator: the tenant namespace, the VM,
its readiness, the annotation and both finalizers. The API server's audit log then shows that
nothing was refused and that every verb the role grants was used: the role is no bigger than
the playbooks need.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest
from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.kubevirt import start_vm_simulator
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.waiting import until

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "wiring-aap.md"
PLAYBOOKS = Path(str(resources.files("cloudkit.local") / "playbooks"))
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NS = "cloudkit-computeinstance"
TENANT_NS = "tenant-credential"
"""Does not exist before provisioning: the playbook creates it under the role."""
ACCOUNT = "cloudkit-automation"
NAME = "vm-credential"
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]
"""The `kubectl` fixture of tests/contract/conftest.py."""


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every permission the role's rules spell out."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def audited(state_dir: Path) -> list[dict[str, Any]]:
    """The API server's RBAC decisions for the account's resource requests."""
    user = f"system:serviceaccount:{ACCOUNT}:{ACCOUNT}"
    entries = [json.loads(line) for line in (state_dir / "audit.jsonl").read_text().splitlines()]
    return [e for e in entries if e["user"] == user and "resource" in e]


def documented_role() -> dict[str, Any]:
    """The ClusterRole of the guide's "A credential for the cluster" section."""
    text = GUIDE.read_text()
    section = text.split("## A credential for the cluster", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    role: dict[str, Any] = yaml.safe_load(block)
    assert role["kind"] == "ClusterRole", block
    return role


def ci_path(name: str | None = None) -> str:
    return resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=NS, name=name)


def vm_path(name: str) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VM_PLURAL,
        namespace=TENANT_NS,
        name=name,
    )


async def bind_documented_role(kube: KubeClient) -> None:
    """The account, the guide's ClusterRole and a ClusterRoleBinding, created as the admin."""
    namespaces = resource_path("", "v1", "namespaces")
    for namespace in (NS, ACCOUNT):
        await kube.ensure(
            namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}}
    await kube.ensure(resource_path("", "v1", "serviceaccounts", namespace=ACCOUNT), account)
    role = documented_role()
    rbac = "rbac.authorization.k8s.io"
    await kube.ensure(resource_path(rbac, "v1", "clusterroles"), role)
    binding = {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ACCOUNT},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": ACCOUNT}],
    }
    await kube.ensure(resource_path(rbac, "v1", "clusterrolebindings"), binding)


def account_kubeconfig(admin: Path, token: str, directory: Path) -> Path:
    """The admin's kubeconfig with the account's token as its only user (0600)."""
    config = yaml.safe_load(admin.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = directory / "automation-kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


async def run_playbook(playbook: str, payload: dict[str, Any], kubeconfig: Path, tmp: Path) -> str:
    """ansible-playbook with the AAP-direct extra vars; fails the test on a non-zero rc."""
    os.makedirs(tmp, exist_ok=True)
    extra_vars = tmp / "vars.json"
    launch = {"ansible_eda": {"event": {"payload": payload}}, "cloudkit_correlation_id": "t"}
    extra_vars.write_text(json.dumps(launch))
    env = {
        **os.environ,
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
    }
    process = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK),
        *("-i", "localhost,", str(PLAYBOOKS / playbook), "-e", f"@{extra_vars}"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # A deadline, not an expectation: a loaded machine can take minutes.
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_the_guides_role_is_enough_for_both_playbooks(
    apiserver: ApiServerHandle, kubectl: Kubectl, tmp_path: Path
) -> None:
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as kube:
        crds = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        await kube.ensure(crds, crd_manifest())
        await bind_documented_role(kube)
        await until(lambda: kube.get(ci_path()), lambda listing: listing is not None)
        issued = await asyncio.to_thread(kubectl, "create", "token", ACCOUNT, "-n", ACCOUNT)
        assert issued.returncode == 0, issued.stderr
        kubeconfig = account_kubeconfig(apiserver.kubeconfig, issued.stdout.strip(), tmp_path)
        simulator = await start_vm_simulator(
            apiserver.kubeconfig, boot_seconds=0.5, stop_seconds=0.5
        )
        try:
            body = {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "metadata": {
                    "name": NAME,
                    "namespace": NS,
                    "finalizers": [names.OPERATOR_FINALIZER],
                },
                "spec": {"templateID": "sample_template"},
            }
            created = await kube.create(ci_path(), body)
            status = {
                "desiredConfigVersion": "0123456789abcdef",
                "tenantReference": {"name": "t", "namespace": TENANT_NS},
            }
            await run_playbook(
                "provision.yml", {**created, "status": status}, kubeconfig, tmp_path / "p"
            )

            vm = await kube.get(vm_path(NAME))
            assert vm is not None and vm["status"]["ready"] is True
            provisioned = await kube.get(ci_path(NAME))
            assert provisioned is not None
            annotations = provisioned["metadata"]["annotations"]
            assert annotations[names.RECONCILED_CONFIG_VERSION_ANNOTATION] == "0123456789abcdef"
            assert names.AUTOMATION_FINALIZER in provisioned["metadata"]["finalizers"]

            # A spec change provisions again: the existing VM is updated (patch), not created.
            changed = {**status, "desiredConfigVersion": "fedcba9876543210"}
            payload = {**provisioned, "spec": {**provisioned["spec"], "cores": 2}}
            await run_playbook(
                "provision.yml", {**payload, "status": changed}, kubeconfig, tmp_path / "q"
            )
            vm = await kube.get(vm_path(NAME))
            assert vm is not None
            assert vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 2

            await kube.delete(ci_path(NAME))
            deleting = await kube.get(ci_path(NAME))
            assert deleting is not None
            payload = {**deleting, "status": changed}
            await run_playbook("deprovision.yml", payload, kubeconfig, tmp_path / "d")
            assert await kube.get(vm_path(NAME)) is None
            left = await kube.get(ci_path(NAME))
            assert left is not None and left["metadata"]["finalizers"] == [names.OPERATOR_FINALIZER]
        finally:
            await simulator.stop()
    decisions = audited(tmp_path / "state")
    assert [e for e in decisions if not e["allowed"]] == []
    used = {(e["group"], e["resource"], e["verb"]) for e in decisions}
    assert granted(documented_role()) - used == set(), "granted by the guide, never used"
