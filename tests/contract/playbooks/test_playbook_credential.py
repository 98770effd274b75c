"""The cluster credential docs/wiring-aap.md gives the playbooks is enough for them, and never
shows up in what a job records.

provision.yml and deprovision.yml run through ansible-runner (as AWX runs a job) under a
ServiceAccount bound to exactly the ClusterRole printed in the guide (parsed from it, so the
guide and the test cannot drift), its token given as AWX's "OpenShift or Kubernetes API Bearer
Token" credential gives it (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL,
K8S_AUTH_SSL_CA_CERT), against the local API server's RBAC and the VM simulator: the tenant
namespace, the VM, its readiness, the annotation and both finalizers. The API server's audit log
then shows that nothing was refused and that every verb the role grants was used: the role is
no bigger than the playbooks need. Neither the token nor a refused one appears in any job's
stdout or events (at verbosity 3, where Ansible shows module arguments).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import ansible_runner
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


def aap_credential(admin: Path, token: str, directory: Path) -> dict[str, str]:
    """The environment AWX's "OpenShift or Kubernetes API Bearer Token" credential injects: the
    server of the admin's kubeconfig, the token, and its CA as a file (AWX writes one too)."""
    cluster = yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return {
        "K8S_AUTH_HOST": cluster["server"],
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca_file),
    }


def run_job(playbook: str, payload: dict[str, Any], credential: dict[str, str], tmp: Path) -> Any:
    """The playbook through ansible-runner with the AAP-direct extra vars and the credential's
    environment, at verbosity 3; returns the Runner (status, stdout, events)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(tmp),
        playbook=str(PLAYBOOKS / playbook),
        inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}},
        extravars={"ansible_eda": {"event": {"payload": payload}}, "cloudkit_correlation_id": "t"},
        envvars={
            **credential,
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
            "ANSIBLE_HOME": str(tmp / "ansible-home"),
        },
        verbosity=3,
        quiet=True,
        # A deadline, not an expectation: a loaded machine can take minutes.
        timeout=600,
    )


def recorded(runner: Any) -> str:
    """Everything the job recorded: its stdout and every event."""
    stdout = str(runner.stdout.read())
    return stdout + "\n".join(json.dumps(event) for event in runner.events)


async def run_playbook(
    playbook: str, payload: dict[str, Any], credential: dict[str, str], tmp: Path
) -> str:
    """run_job, which must succeed; returns what the job recorded."""
    runner = await asyncio.to_thread(run_job, playbook, payload, credential, tmp)
    record = recorded(runner)
    assert runner.status == "successful", record
    return record


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
        token = issued.stdout.strip()
        credential = aap_credential(apiserver.kubeconfig, token, tmp_path)
        records = []
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
            records.append(
                await run_playbook(
                    "provision.yml", {**created, "status": status}, credential, tmp_path / "p"
                )
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
            records.append(
                await run_playbook(
                    "provision.yml", {**payload, "status": changed}, credential, tmp_path / "q"
                )
            )
            vm = await kube.get(vm_path(NAME))
            assert vm is not None
            assert vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 2

            await kube.delete(ci_path(NAME))
            deleting = await kube.get(ci_path(NAME))
            assert deleting is not None
            payload = {**deleting, "status": changed}
            records.append(
                await run_playbook("deprovision.yml", payload, credential, tmp_path / "d")
            )
            assert await kube.get(vm_path(NAME)) is None
            left = await kube.get(ci_path(NAME))
            assert left is not None and left["metadata"]["finalizers"] == [names.OPERATOR_FINALIZER]

            # A refused token: the job fails naming the call, the object and the HTTP status,
            # and the token is nowhere in what it recorded.
            canary = f"refused-token-{uuid.uuid4().hex}"
            refused = await asyncio.to_thread(
                run_job,
                "provision.yml",
                {**left, "status": status},
                {**credential, "K8S_AUTH_API_KEY": canary},
                tmp_path / "r",
            )
            record = recorded(refused)
            assert refused.status == "failed", record
            assert f"computeinstances {NS}/{NAME}: HTTP 401 Unauthorized" in record, record
            assert canary not in record, "a refused token is in the job's stdout or events"
        finally:
            await simulator.stop()
    for record in records:
        assert token not in record, "the credential's token is in a job's stdout or events"
    decisions = audited(tmp_path / "state")
    assert [e for e in decisions if not e["allowed"]] == []
    used = {(e["group"], e["resource"], e["verb"]) for e in decisions}
    assert granted(documented_role()) - used == set(), "granted by the guide, never used"
