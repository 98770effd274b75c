"""What simulated jobs do to the cluster: the shipped playbooks' effects, written in Python.

provision.yml and deprovision.yml (local/playbooks) are the contract; each step here carries
the name of the playbook task it stands for, and a failed step fails the job with that task's
name, as a failed Ansible task does. The same contract tests run the playbooks and these
functions, so the two cannot drift apart.

The ComputeInstance arrives in the launch variables (`ansible_eda.event.payload`) and is
untrusted data: it is copied into request bodies and compared, never templated, shelled or
evaluated. Defaults follow the playbooks' Jinja (`default(x, true)` replaces any falsy value).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path

Pause = Callable[[], Awaitable[None]]
WAIT_TIMEOUT_S = 600.0  # the playbooks' vm_wait_timeout / vm_delete_timeout
DEFAULT_IMAGE = "quay.io/containerdisks/fedora:latest"


class TaskFailed(Exception):
    """A step failed; `task` is the playbook task it stands for."""

    def __init__(self, task: str, message: str) -> None:
        super().__init__(f"Task {task!r} failed: {message}")
        self.task = task
        self.message = message


@contextlib.contextmanager
def _task(name: str) -> Iterator[None]:
    """Any API or connection error inside is that task's failure."""
    try:
        yield
    except TaskFailed:
        raise
    except KubeError as error:
        raise TaskFailed(name, str(error)) from error
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise TaskFailed(name, f"{type(error).__name__}: {error}") from error


def payload_of(extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The ComputeInstance of the launch, as a private copy of the data."""
    with _task("Take the ComputeInstance from the event as data"):
        payload = ((extra_vars.get("ansible_eda") or {}).get("event") or {}).get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("metadata"), dict):
            raise ValueError("ansible_eda.event.payload holds no ComputeInstance")
        if not payload["metadata"].get("name"):
            raise ValueError("the ComputeInstance in ansible_eda.event.payload has no name")
        return copy.deepcopy(payload)


class _Instance:
    """The playbooks' `vars:` computed from the payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        metadata, status = payload["metadata"], payload.get("status") or {}
        self.name = str(metadata["name"])
        self.namespace = str(metadata.get("namespace") or "")
        self.finalizers = list(metadata.get("finalizers") or [])
        self.resource_version = metadata.get("resourceVersion") or ""
        self.labels = metadata.get("labels") or {}
        self.api_version = str(payload.get("apiVersion", names.API_VERSION))
        tenant = (status.get("tenantReference") or {}).get("namespace")
        self.tenant_namespace = str(tenant or self.namespace)
        self.desired_config_version = status.get("desiredConfigVersion") or ""
        self.spec = payload.get("spec") or {}

    @property
    def path(self) -> str:
        group, version = self.api_version.split("/", 1)
        return resource_path(group, version, names.PLURAL, namespace=self.namespace, name=self.name)

    def vm_labels(self) -> dict[str, Any]:
        labels: dict[str, Any] = {names.VM_INSTANCE_LABEL: self.name}
        if names.INSTANCE_UUID_LABEL in self.labels:
            labels[names.INSTANCE_UUID_LABEL] = self.labels[names.INSTANCE_UUID_LABEL]
        return labels

    def run_strategy(self) -> Any:
        return self.spec.get("runStrategy") or "Always"

    def virtual_machine(self) -> dict[str, Any]:
        # templateParameters is a JSON-encoded map (older instances size themselves there).
        parameters = json.loads(self.spec.get("templateParameters") or "{}")
        parameters = parameters if isinstance(parameters, dict) else {}
        cores = self.spec.get("cores") or parameters.get("cpu_cores", 1)
        memory = (
            f"{self.spec['memoryGiB']}Gi"
            if "memoryGiB" in self.spec
            else parameters.get("memory") or "2Gi"
        )
        image = (self.spec.get("image") or {}).get("sourceRef") or (
            parameters.get("image_source") or DEFAULT_IMAGE
        )
        labels = self.vm_labels()
        disk = {"name": "rootdisk", "disk": {"bus": "virtio"}}
        return {
            "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
            "kind": "VirtualMachine",
            "metadata": {"name": self.name, "namespace": self.tenant_namespace, "labels": labels},
            "spec": {
                "runStrategy": self.run_strategy(),
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "domain": {
                            "cpu": {"cores": _jinja_int(cores)},
                            "memory": {"guest": memory},
                            "devices": {"disks": [disk]},
                        },
                        "volumes": [{"name": "rootdisk", "containerDisk": {"image": image}}],
                    },
                },
            },
        }


def _jinja_int(value: Any) -> int:
    """Jinja's `int` filter: a number or numeric string, else 0."""
    for convert in (int, lambda v: int(float(v))):
        try:
            return int(convert(value))
        except (TypeError, ValueError, OverflowError):
            continue
    return 0


def _vm_path(namespace: str, name: str | None = None) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VM_PLURAL,
        namespace=namespace,
        name=name,
    )


# --- provision.yml --------------------------------------------------------------------------------


async def provision(
    kube: KubeClient, payload: dict[str, Any], *, poll_s: float, pause: Pause
) -> None:
    """provision.yml's effects; `pause` runs before the last write (the annotation)."""
    ci = _Instance(payload)
    await _add_automation_finalizer(kube, ci)
    if ci.tenant_namespace != ci.namespace:
        with _task("Ensure the tenant namespace exists"):
            namespace = {"apiVersion": "v1", "kind": "Namespace"}
            await kube.ensure(
                resource_path("", "v1", "namespaces"),
                {**namespace, "metadata": {"name": ci.tenant_namespace}},
            )
    with _task("Create or update the VirtualMachine and wait until it is ready"):
        vm = ci.virtual_machine()
        if await kube.get(_vm_path(ci.tenant_namespace, ci.name)) is None:
            await kube.create(_vm_path(ci.tenant_namespace), vm)
        else:
            await kube.merge_patch(_vm_path(ci.tenant_namespace, ci.name), vm)
        await _wait_ready(kube, _vm_path(ci.tenant_namespace, ci.name), ci.run_strategy(), poll_s)
    with _task("Read the ComputeInstance now that its VirtualMachine exists"):
        live = await kube.get(ci.path)
    if live is None or live["metadata"].get("deletionTimestamp"):
        with _task("Delete the VirtualMachine and wait until it is gone"):
            await _delete_and_wait(kube, _vm_path(ci.tenant_namespace, ci.name), poll_s)
        raise TaskFailed(
            "Stop provisioning a ComputeInstance that is being deleted",
            f"ComputeInstance {ci.namespace}/{ci.name} was deleted during provisioning; "
            "its VirtualMachine was removed",
        )
    await pause()
    with _task("Record the reconciled config version on the ComputeInstance"):
        annotation = {names.RECONCILED_CONFIG_VERSION_ANNOTATION: ci.desired_config_version}
        # state: patched: an instance deleted meanwhile is skipped, never re-created.
        try:
            await kube.merge_patch(ci.path, {"metadata": {"annotations": annotation}})
        except KubeError as error:
            if error.status != 404:
                raise


async def _add_automation_finalizer(kube: KubeClient, ci: _Instance) -> None:
    """JSON patches with a test, as the playbook: nothing another controller added is lost."""
    if names.AUTOMATION_FINALIZER in ci.finalizers:
        return
    if ci.finalizers:
        first = [{"op": "test", "path": "/metadata/finalizers", "value": ci.finalizers}]
        first.append(
            {"op": "add", "path": "/metadata/finalizers/-", "value": names.AUTOMATION_FINALIZER}
        )
    else:
        first = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": ci.resource_version},
            {"op": "add", "path": "/metadata/finalizers", "value": [names.AUTOMATION_FINALIZER]},
        ]
    try:
        await kube.json_patch(ci.path, first)
        return
    except (KubeError, aiohttp.ClientError):
        pass  # the playbook's rescue: read the instance and try once more
    with _task("Read the ComputeInstance as it is now"):
        live = await kube.get(ci.path)
        if live is None:
            raise TaskFailed("Read the ComputeInstance as it is now", "the instance is gone")
    finalizers = list(live["metadata"].get("finalizers") or [])
    if names.AUTOMATION_FINALIZER in finalizers:
        return
    with _task("Add the automation finalizer (guarded by the resourceVersion)"):
        rv = live["metadata"]["resourceVersion"]
        add = (
            {"op": "add", "path": "/metadata/finalizers/-", "value": names.AUTOMATION_FINALIZER}
            if finalizers
            else {
                "op": "add",
                "path": "/metadata/finalizers",
                "value": [names.AUTOMATION_FINALIZER],
            }
        )
        await kube.json_patch(
            ci.path, [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, add]
        )


def _ready(vm: Mapping[str, Any], run_strategy: Any) -> bool:
    """The playbook's wait_condition: Ready=True, or for Halted Ready=False/VMINotExists."""
    for condition in (vm.get("status") or {}).get("conditions") or []:
        if condition.get("type") != "Ready":
            continue
        if run_strategy != "Halted":
            return bool(condition.get("status") == "True")
        return bool(
            condition.get("status") == "False" and condition.get("reason") == "VMINotExists"
        )
    return False


async def _wait_ready(kube: KubeClient, path: str, run_strategy: Any, poll_s: float) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        vm = await kube.get(path)
        if vm is not None and _ready(vm, run_strategy):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the VirtualMachine was not ready within {WAIT_TIMEOUT_S:.0f} s")
        await asyncio.sleep(poll_s)


async def _delete_and_wait(kube: KubeClient, path: str, poll_s: float) -> None:
    await kube.delete(path)
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while await kube.get(path) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the VirtualMachine was not gone within {WAIT_TIMEOUT_S:.0f} s")
        await asyncio.sleep(poll_s)


# --- deprovision.yml ------------------------------------------------------------------------------


async def deprovision(
    kube: KubeClient, payload: dict[str, Any], *, poll_s: float, pause: Pause
) -> None:
    """deprovision.yml's effects; `pause` runs before the last write (the finalizer's removal)."""
    ci = _Instance(payload)
    with _task("Delete the VirtualMachines of the ComputeInstance and wait until they are gone"):
        selector = f"{names.VM_INSTANCE_LABEL}={ci.name}"
        listing = await kube.list_objects(_vm_path(ci.tenant_namespace), labelSelector=selector)
        for vm in listing.get("items") or []:
            meta = vm["metadata"]
            await _delete_and_wait(kube, _vm_path(meta["namespace"], meta["name"]), poll_s)
    await pause()
    # At its place in the payload first, as the playbook; the instance is read only when that
    # place no longer holds the finalizer (or the payload did not show it).
    if names.AUTOMATION_FINALIZER in ci.finalizers and await _remove_automation_finalizer(
        kube, ci, payload, "Remove the automation finalizer (JSON patch)"
    ):
        return
    with _task("Read the ComputeInstance as it is now"):
        live = await kube.get(ci.path)
    await _remove_automation_finalizer(
        kube, ci, live, "Remove the automation finalizer (at its place now)", last=True
    )


async def _remove_automation_finalizer(
    kube: KubeClient, ci: _Instance, seen: dict[str, Any] | None, task: str, *, last: bool = False
) -> bool:
    """Remove at its index in `seen` (the payload, or the instance as read), guarded by a test
    of that index; False when the patch was refused."""
    finalizers = list(((seen or {}).get("metadata") or {}).get("finalizers") or [])
    if names.AUTOMATION_FINALIZER not in finalizers:
        return True  # gone already, or the instance is: a re-run is harmless
    index = finalizers.index(names.AUTOMATION_FINALIZER)
    where = f"/metadata/finalizers/{index}"
    operations = [
        {"op": "test", "path": where, "value": names.AUTOMATION_FINALIZER},
        {"op": "remove", "path": where},
    ]
    if last:
        with _task(task):
            await kube.json_patch(ci.path, operations)
        return True
    try:
        await kube.json_patch(ci.path, operations)
    except (KubeError, aiohttp.ClientError):
        return False
    return True
