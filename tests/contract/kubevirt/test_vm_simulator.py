"""The VM simulator on the real local API server: boot, halt, delete, and watch re-lists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver
from cloudkit.local.kubevirt import VM_FINALIZER, VmSimulatorHandle, start_vm_simulator
from cloudkit.local.stack_kube import KubeClient, resource_path

pytestmark = pytest.mark.stack

BOOT_S = 0.5
STOP_S = 0.5
NS = "tenant-a"


def vm_path(name: str | None = None, namespace: str = NS) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VM_PLURAL,
        namespace=namespace,
        name=name,
    )


def vm_body(name: str, run_strategy: str = "Always") -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {names.VM_INSTANCE_LABEL: name}},
        "spec": {"runStrategy": run_strategy, "template": {"spec": {}}},
    }


@pytest.fixture
async def client(apiserver: ApiServerHandle) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as kube:
        await kube.ensure(
            resource_path("", "v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        )
        yield kube


@pytest.fixture
async def simulator(apiserver: ApiServerHandle) -> AsyncIterator[VmSimulatorHandle]:
    handle = await start_vm_simulator(
        apiserver.kubeconfig, boot_seconds=BOOT_S, stop_seconds=STOP_S
    )
    try:
        yield handle
    finally:
        await handle.stop()


async def until(read: Callable[[], Any], check: Callable[[Any], bool], within: float = 10.0) -> Any:
    """Poll `read()` until `check(value)`; fail with the last value after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value}")
        await asyncio.sleep(0.05)


def ready(vm: dict[str, Any] | None) -> bool:
    conditions = ((vm or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def test_registers_the_crd_with_printer_columns(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    crd = await client.get(
        resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        + "/virtualmachines.kubevirt.io"
    )
    assert crd is not None
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Age", "Status", "Ready"]
    assert crd["spec"]["names"]["shortNames"][0] == "vm"
    assert "status" in version["subresources"]


async def test_boots_a_vm_after_the_boot_time(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    started = time.monotonic()
    await client.create(vm_path(), vm_body("vm-boot"))
    vm = await until(lambda: client.get(vm_path("vm-boot")), ready)
    elapsed = time.monotonic() - started
    assert elapsed >= BOOT_S
    assert vm["status"]["printableStatus"] == "Running"
    assert vm["status"]["ready"] is True and vm["status"]["created"] is True
    assert VM_FINALIZER in vm["metadata"]["finalizers"]


async def test_a_halted_vm_is_stopped_and_not_ready(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    await client.create(vm_path(), vm_body("vm-halted", "Halted"))
    vm = await until(
        lambda: client.get(vm_path("vm-halted")),
        lambda v: (v.get("status") or {}).get("printableStatus") == "Stopped",
    )
    assert vm["status"]["ready"] is False
    assert vm["status"]["conditions"][0]["status"] == "False"
    # Switching the run strategy starts it.
    await client.merge_patch(vm_path("vm-halted"), {"spec": {"runStrategy": "Always"}})
    await until(lambda: client.get(vm_path("vm-halted")), ready)
    # ...and halting a running VM stops it again.
    await client.merge_patch(vm_path("vm-halted"), {"spec": {"runStrategy": "Halted"}})
    await until(
        lambda: client.get(vm_path("vm-halted")),
        lambda v: (v.get("status") or {}).get("printableStatus") == "Stopped",
    )


async def test_deletion_holds_the_finalizer_for_the_stop_time(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    await client.create(vm_path(), vm_body("vm-delete"))
    await until(lambda: client.get(vm_path("vm-delete")), ready)
    started = time.monotonic()
    assert await client.delete(vm_path("vm-delete"))
    terminating = await client.get(vm_path("vm-delete"))
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    await until(lambda: client.get(vm_path("vm-delete")), lambda v: v is None)
    assert time.monotonic() - started >= STOP_S


async def test_vms_created_before_start_and_after_a_restart_are_handled(
    apiserver: ApiServerHandle, client: KubeClient
) -> None:
    first = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=60, stop_seconds=0)
    try:
        await client.create(vm_path(), vm_body("vm-early"))
        await until(
            lambda: client.get(vm_path("vm-early")),
            lambda v: (v.get("status") or {}).get("printableStatus") == "Starting",
        )
    finally:
        await first.stop()
    # A new simulator (a restart) lists what exists and finishes the boot.
    second = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=BOOT_S, stop_seconds=0)
    try:
        await until(lambda: client.get(vm_path("vm-early")), ready)
    finally:
        await second.stop()


async def test_survives_an_api_server_restart(tmp_path: Path) -> None:
    """The watch drops when the API server stops; the simulator re-lists once it is back."""
    state = tmp_path / "restart"
    first = await start_apiserver(state)
    port = int(first.url.rsplit(":", 1)[1])
    simulator = await start_vm_simulator(first.kubeconfig, boot_seconds=0.2, stop_seconds=0)
    try:
        await first.stop()
        second = await start_apiserver(state, port=port)
        try:
            async with KubeClient.from_kubeconfig(second.kubeconfig) as kube:
                await kube.ensure(
                    resource_path("", "v1", "namespaces"),
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
                )
                await kube.create(vm_path(), vm_body("vm-after-restart"))
                await until(lambda: kube.get(vm_path("vm-after-restart")), ready, within=20)
        finally:
            await second.stop()
    finally:
        await simulator.stop()
