"""provision.yml and deprovision.yml run by ansible-playbook against the real local API server
and the VM simulator: the VM, its readiness, the annotation and both finalizers.

Every test runs twice: with Ansible, and with the automation service's simulated jobs
(`kind: simulated`), whose effects must be the playbooks' own, so the two cannot drift."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest
from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.automation.simulated_jobs import run_effects
from cloudkit.local.kubevirt import VM_FINALIZER, VmSimulatorHandle, start_vm_simulator
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.waiting import until

pytestmark = pytest.mark.stack

PLAYBOOKS = Path(str(resources.files("cloudkit.local") / "playbooks"))
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NS = "cloudkit-computeinstance"
TENANT_NS = "tenant-b"
BOOT_S = 1.0
OTHER_FINALIZER = "example.com/keep-me"


def ci_path(name: str | None = None, subresource: str | None = None) -> str:
    return resource_path(
        names.GROUP, names.VERSION, names.PLURAL, namespace=NS, name=name, subresource=subresource
    )


def vm_path(name: str | None = None, namespace: str = TENANT_NS) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VM_PLURAL,
        namespace=namespace,
        name=name,
    )


@pytest.fixture
async def client(apiserver: ApiServerHandle) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as kube:
        crds = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        await kube.ensure(crds, crd_manifest())
        namespaces = resource_path("", "v1", "namespaces")
        await kube.ensure(
            namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
        await until(lambda: kube.get(ci_path()), lambda listing: listing is not None)
        yield kube


@pytest.fixture
async def simulator(apiserver: ApiServerHandle) -> AsyncIterator[VmSimulatorHandle]:
    handle = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=BOOT_S, stop_seconds=0.5)
    try:
        yield handle
    finally:
        await handle.stop()


RunPlaybook = Callable[[str, dict[str, Any], Path, Path], Awaitable[tuple[int, str]]]


def launch_vars(payload: dict[str, Any]) -> dict[str, Any]:
    """The AAP-direct extra vars shape."""
    return {"ansible_eda": {"event": {"payload": payload}}, "cloudkit_correlation_id": "t"}


@pytest.fixture(params=["ansible", "simulated"])
def run_playbook(request: pytest.FixtureRequest) -> RunPlaybook:
    """Runs a playbook's effects; returns (rc, output). One test body holds both kinds."""
    return run_with_ansible if request.param == "ansible" else run_simulated


async def run_simulated(
    playbook: str, payload: dict[str, Any], kubeconfig: Path, tmp_path: Path
) -> tuple[int, str]:
    """What a simulated job of the template for `playbook` does (no Ansible)."""
    effects = playbook.removesuffix(".yml")
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        outcome = await run_effects(effects, launch_vars(payload), kube, poll_s=0.2)
    return (0 if outcome.status == "successful" else 2), outcome.job_explanation


async def run_with_ansible(
    playbook: str, payload: dict[str, Any], kubeconfig: Path, tmp_path: Path, *options: str
) -> tuple[int, str]:
    """ansible-playbook with the AAP-direct extra vars shape (and `options`); returns (rc,
    output)."""
    os.makedirs(tmp_path, exist_ok=True)
    extra_vars = tmp_path / f"{playbook}.vars.json"
    extra_vars.write_text(json.dumps(launch_vars(payload)))
    env = {
        **os.environ,
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    process = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK),
        "-i",
        "localhost,",
        str(PLAYBOOKS / playbook),
        "-e",
        f"@{extra_vars}",
        "-e",
        f"ansible_python_interpreter={interpreter_recorder(tmp_path)}",
        *options,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # A deadline, not an expectation: a loaded machine can take minutes.
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    return process.returncode or 0, output.decode()


MODULE_PROCESSES_LOG = "module-processes.log"


def interpreter_recorder(directory: Path) -> Path:
    """An interpreter for Ansible's modules that notes each start in MODULE_PROCESSES_LOG, then
    runs Python: every module task (kubernetes.core's included) starts one, an action none."""
    wrapper = directory / "python-recorder"
    log = shlex.quote(str(directory / MODULE_PROCESSES_LOG))
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o700)
    return wrapper


def assert_cost(directory: Path, run_playbook: RunPlaybook) -> None:
    """An Ansible run in `directory` started no Python process for its tasks: every Kubernetes
    call is made by the kubernetes_api action inside ansible-playbook's worker (a
    kubernetes.core task would start one that imports the kubernetes client, ~1.5 CPU-s).
    The cost the jobs are held to (docs/benchmarks/jobs.md)."""
    if run_playbook is not run_with_ansible:
        return  # a simulated job runs no Ansible
    log = directory / MODULE_PROCESSES_LOG
    started = log.read_text().splitlines() if log.exists() else []
    assert started == [], f"{len(started)} module processes started"


def instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {names.INSTANCE_UUID_LABEL: "0000-1111"},
            "finalizers": [names.OPERATOR_FINALIZER, OTHER_FINALIZER],
        },
        "spec": {
            "templateID": "sample_template",
            "cores": 2,
            "memoryGiB": 4,
            "runStrategy": "Always",
            "image": {"sourceType": "registry", "sourceRef": "quay.io/containerdisks/fedora:41"},
        },
    }


async def test_provision_then_deprovision(
    apiserver: ApiServerHandle,
    simulator: VmSimulatorHandle,
    client: KubeClient,
    tmp_path: Path,
    run_playbook: RunPlaybook,
) -> None:
    """Two instances provisioned side by side (the machine has two cores; this halves the
    wall time): vm-one the usual way, vm-two halted, without a finalizer list and from a
    stale payload. Then vm-one is deprovisioned, twice."""
    created = await client.create(ci_path(), instance("vm-one"))
    status = {
        "desiredConfigVersion": "0123456789abcdef",
        "tenantReference": {"name": "t", "namespace": TENANT_NS},
    }
    payload = {**created, "status": status}

    body = instance("vm-two")
    del body["metadata"]["finalizers"]
    body["spec"]["runStrategy"] = "Halted"
    created_two = await client.create(ci_path(), body)
    # vm-two changes after its payload was taken: the resourceVersion-guarded patch fails
    # once, and the playbook re-reads and adds the finalizer (no duplicate, none lost).
    await client.merge_patch(ci_path("vm-two"), {"metadata": {"labels": {"later": "change"}}})
    # No tenant reference: its VM goes to the instance's own namespace.
    payload_two = {**created_two, "status": {"desiredConfigVersion": "feedfacefeedface"}}

    (rc, output), (rc_two, output_two) = await asyncio.gather(
        run_playbook("provision.yml", payload, apiserver.kubeconfig, tmp_path / "one"),
        run_playbook("provision.yml", payload_two, apiserver.kubeconfig, tmp_path / "two"),
    )
    assert rc == 0, output
    assert rc_two == 0, output_two
    assert_cost(tmp_path / "one", run_playbook)
    assert_cost(tmp_path / "two", run_playbook)

    vm = await client.get(vm_path("vm-one"))
    assert vm is not None, "provision.yml created no VirtualMachine"
    assert vm["metadata"]["labels"][names.VM_INSTANCE_LABEL] == "vm-one"
    assert vm["metadata"]["labels"][names.INSTANCE_UUID_LABEL] == "0000-1111"
    assert vm["spec"]["runStrategy"] == "Always"
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert domain["cpu"]["cores"] == 2
    assert domain["memory"]["guest"] == "4Gi"
    volume = vm["spec"]["template"]["spec"]["volumes"][0]
    assert volume["containerDisk"]["image"] == "quay.io/containerdisks/fedora:41"
    # The playbook waited for readiness: the VM is Ready by the time it finished.
    assert vm["status"]["ready"] is True

    ci = await client.get(ci_path("vm-one"))
    assert ci is not None
    annotations = ci["metadata"]["annotations"]
    assert annotations[names.RECONCILED_CONFIG_VERSION_ANNOTATION] == "0123456789abcdef"
    assert ci["metadata"]["finalizers"] == [
        names.OPERATOR_FINALIZER,
        OTHER_FINALIZER,
        names.AUTOMATION_FINALIZER,
    ]

    vm_two = await client.get(vm_path("vm-two", namespace=NS))
    assert vm_two is not None
    assert vm_two["status"]["printableStatus"] == "Stopped"
    assert VM_FINALIZER in vm_two["metadata"]["finalizers"]
    ci_two = await client.get(ci_path("vm-two"))
    assert ci_two is not None
    assert ci_two["metadata"]["finalizers"] == [names.AUTOMATION_FINALIZER]
    assert (
        ci_two["metadata"]["annotations"][names.RECONCILED_CONFIG_VERSION_ANNOTATION]
        == "feedfacefeedface"
    )

    # Deletion: the CR waits on its finalizers; deprovision removes the VM, then ours.
    await client.delete(ci_path("vm-one"))
    live = await client.get(ci_path("vm-one"))
    assert live is not None
    deleting = {**live, "status": status}  # the operator sends its computed status
    rc, output = await run_playbook("deprovision.yml", deleting, apiserver.kubeconfig, tmp_path)
    assert rc == 0, output
    assert_cost(tmp_path, run_playbook)
    assert await client.get(vm_path("vm-one")) is None, output
    left = await client.get(ci_path("vm-one"))
    assert left is not None
    assert left["metadata"]["finalizers"] == [names.OPERATOR_FINALIZER, OTHER_FINALIZER]

    # Re-running deprovision once the instance itself is gone is harmless.
    await client.json_patch(ci_path("vm-one"), [{"op": "remove", "path": "/metadata/finalizers"}])
    await until(lambda: client.get(ci_path("vm-one")), lambda v: v is None)
    rc, output = await run_playbook("deprovision.yml", deleting, apiserver.kubeconfig, tmp_path)
    assert rc == 0, output


@pytest.mark.parametrize("deletion", ["deleting", "gone"])
async def test_provision_gives_its_vm_up_when_the_instance_is_being_deleted(
    deletion: str,
    apiserver: ApiServerHandle,
    simulator: VmSimulatorHandle,
    client: KubeClient,
    tmp_path: Path,
    run_playbook: RunPlaybook,
) -> None:
    """The EDA race: a deprovision job that looked for VMs before this provision job created
    one cannot delete it, so the provision job must notice the deletion and undo its VM."""
    name = f"race-{deletion}"
    body = instance(name)
    body["metadata"]["finalizers"] = [names.OPERATOR_FINALIZER, names.AUTOMATION_FINALIZER]
    created = await client.create(ci_path(), body)
    payload = {
        **created,
        "status": {
            "desiredConfigVersion": "0123456789abcdef",
            "tenantReference": {"name": "t", "namespace": TENANT_NS},
        },
    }
    await client.delete(ci_path(name))
    if deletion == "gone":
        await client.json_patch(ci_path(name), [{"op": "remove", "path": "/metadata/finalizers"}])
        await until(lambda: client.get(ci_path(name)), lambda v: v is None)

    rc, output = await run_playbook("provision.yml", payload, apiserver.kubeconfig, tmp_path)

    assert rc != 0, output
    assert "was deleted during provisioning; its VirtualMachine was removed" in output
    assert await client.get(vm_path(name)) is None, output
    left = await client.get(ci_path(name))
    if deletion == "gone":
        assert left is None, "the playbook re-created the deleted ComputeInstance"
    else:
        assert left is not None
        assert names.RECONCILED_CONFIG_VERSION_ANNOTATION not in (
            left["metadata"].get("annotations") or {}
        )


def jinja(markers: Path, field: str) -> str:
    """A template that touches its own marker file if anything renders it."""
    return f"{{{{ lookup('ansible.builtin.pipe', 'touch {markers / field}') }}}}"


def leaked(markers: Path) -> list[str]:
    return sorted(path.name for path in markers.iterdir())


def hostile_instance(name: str, markers: Path) -> dict[str, Any]:
    """Jinja in every free-text string of the schema. Names, label keys and values, annotation
    keys, finalizers, templateID (a pattern) and the enums cannot hold `{`, `'` or `(`."""
    body = instance(name)
    del body["spec"]["memoryGiB"], body["spec"]["cores"]  # sizing from templateParameters
    body["metadata"]["annotations"] = {"example.com/note": jinja(markers, "annotation")}
    body["spec"]["image"]["sourceRef"] = jinja(markers, "image")
    body["spec"]["templateParameters"] = json.dumps(
        {
            jinja(markers, "parameter-key"): jinja(markers, "parameter-value"),
            "memory": jinja(markers, "parameter-memory"),
        }
    )
    body["spec"]["sshKey"] = jinja(markers, "ssh-key")
    body["spec"]["userDataSecretRef"] = {"name": jinja(markers, "user-data")}
    body["spec"]["bootDisk"] = {"sizeGiB": 10, "storageClass": jinja(markers, "boot-disk")}
    body["spec"]["additionalDisks"] = [{"sizeGiB": 1, "storageClass": jinja(markers, "disk")}]
    return body


async def test_a_hostile_payload_is_data_even_as_trusted_extra_vars(
    apiserver: ApiServerHandle,
    simulator: VmSimulatorHandle,
    client: KubeClient,
    tmp_path: Path,
    run_playbook: RunPlaybook,
) -> None:
    """run_playbook extra vars are plain YAML (ansible-rulebook), which Ansible templates, as
    it does under a controller with ALLOW_JINJA_IN_EXTRA_VARS=always: the playbooks
    themselves must take the payload as data. The literal strings reach the VM."""
    markers = tmp_path / "markers"
    markers.mkdir()
    created = await client.create(ci_path(), hostile_instance("hostile", markers))
    version = jinja(markers, "config-version")
    payload = {**created, "status": {"desiredConfigVersion": version}}

    rc, output = await run_playbook("provision.yml", payload, apiserver.kubeconfig, tmp_path)
    assert leaked(markers) == [], output
    assert rc == 0, output
    vm = await client.get(vm_path("hostile", namespace=NS))
    assert vm is not None, output
    template = vm["spec"]["template"]["spec"]
    assert template["volumes"][0]["containerDisk"]["image"] == jinja(markers, "image")
    assert template["domain"]["memory"]["guest"] == jinja(markers, "parameter-memory")
    ci = await client.get(ci_path("hostile"))
    assert ci is not None
    assert ci["metadata"]["annotations"][names.RECONCILED_CONFIG_VERSION_ANNOTATION] == version

    await client.delete(ci_path("hostile"))
    live = await client.get(ci_path("hostile"))
    assert live is not None
    rc, output = await run_playbook("deprovision.yml", {**live, "status": payload["status"]},
                                    apiserver.kubeconfig, tmp_path)  # fmt: skip
    assert leaked(markers) == [], output
    assert rc == 0, output
    assert await client.get(vm_path("hostile", namespace=NS)) is None, output


async def test_deprovision_removes_only_its_finalizer_when_the_list_moved(
    apiserver: ApiServerHandle,
    simulator: VmSimulatorHandle,
    client: KubeClient,
    tmp_path: Path,
    run_playbook: RunPlaybook,
) -> None:
    """The payload's index of the automation finalizer is tried first, unread: another
    controller that released its own finalizer meanwhile moved the list, and that index now
    holds a third finalizer, which must survive (the JSON patch tests the index)."""
    third = "example.com/third"
    body = instance("moved")
    body["metadata"]["finalizers"] = [OTHER_FINALIZER, names.AUTOMATION_FINALIZER, third]
    await client.create(ci_path(), body)
    await client.delete(ci_path("moved"))
    payload = await client.get(ci_path("moved"))
    assert payload is not None
    await client.json_patch(ci_path("moved"), [{"op": "remove", "path": "/metadata/finalizers/0"}])

    rc, output = await run_playbook("deprovision.yml", payload, apiserver.kubeconfig, tmp_path)

    assert rc == 0, output
    left = await client.get(ci_path("moved"))
    assert left is not None, output
    assert left["metadata"]["finalizers"] == [third], output


async def test_a_check_run_writes_nothing(
    apiserver: ApiServerHandle, client: KubeClient, tmp_path: Path
) -> None:
    """`--check` (an AWX job of type check): every write is reported, none is sent."""
    created = await client.create(ci_path(), instance("checked"))
    payload = {**created, "status": {"desiredConfigVersion": "0123456789abcdef"}}
    rc, output = await run_with_ansible(
        "provision.yml", payload, apiserver.kubeconfig, tmp_path, "--check"
    )
    assert rc == 0, output
    assert await client.get(ci_path("checked")) == created, output
    assert await client.get(vm_path("checked", namespace=NS)) is None, output
