"""The operator's Kubernetes I/O for VirtualMachineInstances, on the real local API server with the
VM simulator: observations carry the VMI's creation time and address in the fewest requests,
a restart's delete reaches the server (and is counted), and no KubeVirt means nothing found.

The operator's client authenticates as deploy/operator's ServiceAccount (its RBAC applied from
those files); VMs and CRDs are made with the admin's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloudkit.api import names
from cloudkit.lifecycle.types import VirtualMachineObservation
from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver
from cloudkit.local.kubevirt import start_vm_simulator, vm_crd_manifest, vmi_address
from cloudkit.local.kubevirt.crd import VM_CRD_NAME
from cloudkit.local.kubevirt.simulator import wait_established
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.operator_account import (
    kubeconfig_username,
    prepare_operator_kubeconfig,
    service_account_username,
)
from cloudkit.operator.kube import Kube
from tests.waiting import until

pytestmark = pytest.mark.stack

TENANT = "tenant-vmi"
CRDS = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[ApiServerHandle]:
    handle = await start_apiserver(tmp_path / "state")
    try:
        async with KubeClient.from_kubeconfig(handle.kubeconfig) as kube:
            await kube.ensure(
                resource_path("", "v1", "namespaces"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT}},
            )
        yield handle
    finally:
        await handle.stop()


class Counted:
    """The operator's client, with the verbs of every request it made (the metric's input)."""

    def __init__(self) -> None:
        self.verbs: list[str] = []
        self.kube: Kube | None = None

    async def connect(self, apiserver: ApiServerHandle) -> Kube:
        """The operator's client under its ServiceAccount (proven, so no admin slips in)."""
        kubeconfig = await prepare_operator_kubeconfig(
            apiserver.kubeconfig, apiserver.kubeconfig.with_name("operator.kubeconfig")
        )
        assert await kubeconfig_username(kubeconfig) == service_account_username()
        self.kube = await Kube.connect(kubeconfig, on_request=self.verbs.append)
        return self.kube


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    counted = Counted()
    yield counted
    if counted.kube is not None:
        await counted.kube.close()


async def create_vm(kubeconfig: Path, name: str, instance: str) -> None:
    labels = {names.VM_INSTANCE_LABEL: instance}
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        await kube.create(
            resource_path(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, namespace=TENANT
            ),
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "metadata": {"name": name, "labels": labels},
                "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}}},
            },
        )


async def observe_until(
    kube: Kube, instance: str, count: int, within: float = 10.0
) -> tuple[VirtualMachineObservation, ...]:
    """list_vms until `count` VMs all show an address; fail with the last answer otherwise."""
    seen: tuple[VirtualMachineObservation, ...] | None = await until(
        lambda: kube.list_vms(instance),
        lambda seen: seen is not None and len(seen) == count and all(vm.ip_address for vm in seen),
        within=within,
        what=f"{count} VMs with addresses",
    )
    assert seen is not None
    return seen


async def test_one_vm_costs_one_get_of_its_instance(
    apiserver: ApiServerHandle, counted: Counted
) -> None:
    simulator = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=0.2, stop_seconds=0)
    try:
        kube = await counted.connect(apiserver)
        await create_vm(apiserver.kubeconfig, "ci-one", "ci-one")
        started = time.time()
        [vm] = await observe_until(kube, "ci-one", 1)
        assert vm.ip_address == vmi_address(TENANT, "ci-one")
        assert vm.vmi_created_at is not None
        assert abs(vm.vmi_created_at.timestamp() - started) < 5
        counted.verbs.clear()
        await kube.list_vms("ci-one")
        assert counted.verbs == ["GET", "GET"]  # the VMs, then the one VMI
    finally:
        await simulator.stop()


async def test_several_vms_in_a_namespace_cost_one_list(
    apiserver: ApiServerHandle, counted: Counted
) -> None:
    simulator = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=0.2, stop_seconds=0)
    try:
        kube = await counted.connect(apiserver)
        for name in ("ci-many-a", "ci-many-b", "ci-many-c"):
            await create_vm(apiserver.kubeconfig, name, "ci-many")
        seen = await observe_until(kube, "ci-many", 3)
        assert {vm.name: vm.ip_address for vm in seen} == {
            name: vmi_address(TENANT, name) for name in ("ci-many-a", "ci-many-b", "ci-many-c")
        }
        counted.verbs.clear()
        await kube.list_vms("ci-many")
        assert counted.verbs == ["GET", "GET"]  # the VMs, then the namespace's VMIs
    finally:
        await simulator.stop()


async def test_deleting_an_instance_restarts_it_and_is_counted(
    apiserver: ApiServerHandle, counted: Counted
) -> None:
    simulator = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=0.5, stop_seconds=0)
    try:
        kube = await counted.connect(apiserver)
        await create_vm(apiserver.kubeconfig, "ci-restart", "ci-restart")
        await observe_until(kube, "ci-restart", 1)
        counted.verbs.clear()
        assert await kube.delete_vmi(TENANT, "ci-restart") is True
        assert counted.verbs == ["DELETE"]
        # Gone at once (no finalizer), or re-created and booting: no address either way.
        [booting] = await kube.list_vms("ci-restart") or [None]
        assert booting is not None and booting.ip_address is None
        [again] = await observe_until(kube, "ci-restart", 1)
        assert again.ip_address == vmi_address(TENANT, "ci-restart")
        assert await kube.delete_vmi(TENANT, "no-such-vm") is False
    finally:
        await simulator.stop()


async def test_without_the_instance_crd_nothing_breaks(
    apiserver: ApiServerHandle, counted: Counted
) -> None:
    kube = await counted.connect(apiserver)
    assert await kube.list_vms("ci-none") is None  # no KubeVirt at all
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.ensure(CRDS, vm_crd_manifest())
        await wait_established(client, VM_CRD_NAME)
    await create_vm(apiserver.kubeconfig, "ci-bare", "ci-bare")
    await create_vm(apiserver.kubeconfig, "ci-bare-2", "ci-bare")
    seen = await kube.list_vms("ci-bare")
    assert seen is not None and len(seen) == 2
    assert all(vm.vmi_created_at is None and vm.ip_address is None for vm in seen)
    assert await kube.delete_vmi(TENANT, "ci-bare") is False
