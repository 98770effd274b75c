"""The VM simulator on the real local API server: boot, halt, delete, VirtualMachineInstances
(address, restart by deleting one), and watch re-lists."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver
from cloudkit.local.kubevirt import (
    VM_FINALIZER,
    VMI_NETWORK,
    VmSimulatorHandle,
    start_vm_simulator,
    vmi_address,
)
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.waiting import until

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


def vmi_path(name: str | None = None, namespace: str = NS) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VMI_PLURAL,
        namespace=namespace,
        name=name,
    )


def vm_body(name: str, run_strategy: str = "Always") -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {names.VM_INSTANCE_LABEL: name}},
        "spec": {
            "runStrategy": run_strategy,
            "template": {
                "metadata": {"labels": {names.VM_INSTANCE_LABEL: name, "role": "test"}},
                "spec": {"domain": {"cpu": {"cores": 1}}},
            },
        },
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


def created_at(obj: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def running_instance(vmi: dict[str, Any] | None) -> bool:
    return bool(vmi and (vmi.get("status") or {}).get("phase") == "Running")


async def test_registers_the_instance_crd_with_an_ip_column(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    crd = await client.get(
        resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        + "/virtualmachineinstances.kubevirt.io"
    )
    assert crd is not None
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["IP"] == ".status.interfaces[0].ipAddress"
    assert crd["spec"]["names"]["shortNames"][0] == "vmi"


async def test_a_running_vm_has_an_instance_with_an_address(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    created = await client.create(vm_path(), vm_body("vm-vmi"))
    await until(lambda: client.get(vm_path("vm-vmi")), ready)
    vmi = await until(lambda: client.get(vmi_path("vm-vmi")), running_instance)
    meta = vmi["metadata"]
    assert (meta["namespace"], meta["name"]) == (NS, "vm-vmi")
    assert meta["labels"] == {names.VM_INSTANCE_LABEL: "vm-vmi", "role": "test"}
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "VirtualMachine",
        "vm-vmi",
        created["metadata"]["uid"],
    )
    assert owner["controller"] is True
    assert created_at(vmi) >= created_at(created)
    assert vmi["spec"] == {"domain": {"cpu": {"cores": 1}}}
    address = vmi["status"]["interfaces"][0]["ipAddress"]
    assert address == vmi_address(NS, "vm-vmi")
    assert ipaddress.ip_address(address) in VMI_NETWORK
    assert address != vmi_address(NS, "another-vm")


async def test_deleting_the_instance_restarts_the_vm(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    """KubeVirt re-creates the VMI of a running VM: a new one, not Ready for the boot time."""
    await client.create(vm_path(), vm_body("vm-restart"))
    await until(lambda: client.get(vm_path("vm-restart")), ready)
    before = await until(lambda: client.get(vmi_path("vm-restart")), running_instance)
    requested = datetime.now(UTC).replace(microsecond=0)
    started = time.monotonic()
    assert await client.delete(vmi_path("vm-restart"))
    # Not Ready while the new instance boots...
    await until(lambda: client.get(vm_path("vm-restart")), lambda v: not ready(v), within=5)
    # ...then a new instance (new uid, created after the delete), Running, with the same address.
    after = await until(
        lambda: client.get(vmi_path("vm-restart")),
        lambda v: running_instance(v) and v["metadata"]["uid"] != before["metadata"]["uid"],
    )
    await until(lambda: client.get(vm_path("vm-restart")), ready)
    assert time.monotonic() - started >= BOOT_S
    assert created_at(after) >= requested
    assert after["status"]["interfaces"][0]["ipAddress"] == vmi_address(NS, "vm-restart")


async def test_halting_or_deleting_a_vm_removes_its_instance(
    simulator: VmSimulatorHandle, client: KubeClient
) -> None:
    await client.create(vm_path(), vm_body("vm-halt-vmi"))
    await until(lambda: client.get(vmi_path("vm-halt-vmi")), running_instance)
    await client.merge_patch(vm_path("vm-halt-vmi"), {"spec": {"runStrategy": "Halted"}})
    await until(lambda: client.get(vmi_path("vm-halt-vmi")), lambda v: v is None)
    stopped = await client.get(vm_path("vm-halt-vmi"))
    assert stopped is not None and stopped["status"]["printableStatus"] == "Stopped"
    await client.merge_patch(vm_path("vm-halt-vmi"), {"spec": {"runStrategy": "Always"}})
    await until(lambda: client.get(vmi_path("vm-halt-vmi")), running_instance)
    assert await client.delete(vm_path("vm-halt-vmi"))
    await until(lambda: client.get(vm_path("vm-halt-vmi")), lambda v: v is None)
    assert await client.get(vmi_path("vm-halt-vmi")) is None


async def test_a_lifecycle_costs_the_simulator_no_read(
    simulator: VmSimulatorHandle, client: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boot and delete read nothing: the VMI it deleted itself is no restart (no GET of the
    VM) and the finalizer goes by the version the deletion arrived with (no GET either)."""
    sent: list[tuple[str, str]] = []
    request = simulator.client.request

    async def counted(method: str, path: str, **options: Any) -> dict[str, Any]:
        sent.append((method, path))
        return await request(method, path, **options)

    monkeypatch.setattr(simulator.client, "request", counted)
    await client.create(vm_path(), vm_body("vm-reads"))
    await until(lambda: client.get(vm_path("vm-reads")), ready)
    assert await client.delete(vm_path("vm-reads"))
    await until(lambda: client.get(vm_path("vm-reads")), lambda v: v is None)
    # The VMI's DELETED event may come after the VM's: wait until it has been handled.
    await until(lambda: _settled(simulator), bool)
    assert [method for method, _ in sent if method == "GET"] == [], sent
    # finalizer, Starting, VMI, VMI Running, Running, Terminating, VMI deleted, finalizer
    assert len(sent) == 8, sent


async def _settled(simulator: VmSimulatorHandle) -> bool:
    return not simulator.simulator._vmis and not simulator.simulator._deleted_vmis
