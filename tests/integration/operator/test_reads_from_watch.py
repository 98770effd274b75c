"""The reconciler reads from the watch cache, and fresh where it must: counted on a real API
server with a real AWX-compatible automation service (simulated job templates).

The reconciler runs pass by pass in this process; its cache is fed by real watches of the API
server through the same calls kopf's event handlers make (WatchCache.*_event), so each test
chooses what the cache has seen: caught up, or deliberately behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cloudkit.api import names
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle
from cloudkit.local.stack.kube import KubeClient, WatchExpired, resource_path
from cloudkit.operator.cache import WatchCache
from cloudkit.operator.kube import Kube
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.reconcile import Reconciler
from tests.harness.in_process import ReconcilerStack, in_process_reconciler
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
VM_PATH = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)
VMI_PATH = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL)
HOLD = "example.com/hold"
"""A finalizer of someone else's: the object outlives ours, so its last status can be read."""


@dataclass
class WatchFedReconciler:
    stack: StackHandle
    kube: KubeClient
    fresh: Kube
    """An uncounted client, to compare the cache with the server."""
    reconciler: Reconciler
    cache: WatchCache
    requests: Counter[str]
    feeds: list[asyncio.Task[None]] = field(default_factory=list)

    def feed(self) -> None:
        """Start the watches that feed the cache, as kopf's handlers do in the operator."""
        self.feeds = [
            asyncio.create_task(watch_into(self.kube, CI_PATH, self.cache.instance_event)),
            asyncio.create_task(watch_into(self.kube, VM_PATH, self.cache.vm_event)),
            asyncio.create_task(watch_into(self.kube, VMI_PATH, self.cache.vmi_event)),
        ]


async def watch_into(
    kube: KubeClient, path: str, deliver: Callable[[str | None, dict[str, Any]], None]
) -> None:
    """List (events of type None, as kopf delivers a listing), then watch; re-list on 410."""
    while True:
        listed = await kube.list_objects(path)
        for item in listed.get("items") or []:
            deliver(None, item)
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        with contextlib.suppress(WatchExpired):
            async for kind, obj in kube.watch(path, version):
                if kind != "BOOKMARK":
                    deliver(kind, obj)


@pytest_asyncio.fixture(loop_scope="module")
async def in_process(shared_stack: ReconcilerStack) -> AsyncIterator[WatchFedReconciler]:
    cache = WatchCache()
    async with in_process_reconciler(shared_stack, cache=cache) as lab:
        fresh = await Kube.connect(lab.kubeconfig)
        in_process = WatchFedReconciler(
            lab.stack, lab.kube, fresh, lab.reconciler, cache, lab.requests
        )
        try:
            yield in_process
        finally:
            for task in in_process.feeds:
                task.cancel()
            await asyncio.gather(*in_process.feeds, return_exceptions=True)
            await fresh.close()


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("status") or {}


async def create(in_process: WatchFedReconciler, name: str, **metadata: Any) -> InstanceKey:
    await in_process.kube.create(
        CI_PATH,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name, **metadata},
            "spec": {"templateID": "tpl", "cores": 1, "memoryGiB": 1},
        },
    )
    return InstanceKey(INSTANCE_NAMESPACE, name)


async def caught_up(in_process: WatchFedReconciler, key: InstanceKey) -> bool:
    """Has the cache seen the instance's current version and its VMs (with VMIs) as they are?"""
    server = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    cached = in_process.cache.instance(key)
    if server is None or cached is None:
        return False
    if server["metadata"]["resourceVersion"] != cached["metadata"]["resourceVersion"]:
        return False
    return await in_process.fresh.list_vms(key.name) == in_process.cache.vm_observations(key.name)


async def test_a_pass_woken_with_nothing_new_reads_nothing_from_the_api_server(
    in_process: WatchFedReconciler,
) -> None:
    """Once the watch has delivered everything, a pass reads the instance and its VMs from the
    cache: no GET of the instance, no list of VMs, no GET of a VMI, and nothing written."""
    in_process.feed()
    key = await create(in_process, "quiet")

    async def one_pass() -> dict[str, Any] | None:
        await in_process.reconciler.reconcile(key)
        return await in_process.kube.get(f"{CI_PATH}/{key.name}")

    def settled(obj: dict[str, Any] | None) -> bool:
        job = status(obj).get("provisionJob") or {}
        return status(obj).get("phase") == "Ready" and job.get("state") == "Succeeded"

    await until(one_pass, settled, within=30)
    await until(lambda: caught_up(in_process, key), bool, within=30)
    await in_process.reconciler.reconcile(key)  # any write still due (none expected) is made here
    await until(lambda: caught_up(in_process, key), bool, within=30)
    assert in_process.cache.vm_observations(key.name), "the simulated job's VM is in the cache"

    in_process.requests.clear()
    await in_process.reconciler.reconcile(key)
    assert in_process.requests == Counter(), in_process.requests
    assert settled(await in_process.kube.get(f"{CI_PATH}/{key.name}"))


async def test_after_a_write_conflict_the_pass_reads_the_instance_fresh(
    in_process: WatchFedReconciler,
) -> None:
    """The cache holds a version the server has moved past: the first write conflicts, and the
    pass re-reads with a GET (not the cache, which would conflict again and again)."""
    key = await create(in_process, "behind")
    old = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    assert old is not None
    await in_process.kube.merge_patch(f"{CI_PATH}/{key.name}", {"metadata": {"labels": {"x": "y"}}})
    in_process.cache.instance_event(None, old)  # the watch delivered the old version only

    in_process.requests.clear()
    await in_process.reconciler.reconcile(key)
    now = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    assert status(now).get("phase") == "Progressing", status(now)
    assert names.OPERATOR_FINALIZER in now["metadata"].get("finalizers", [])  # type: ignore[index]
    assert in_process.requests["GET"] >= 2, (
        in_process.requests
    )  # the fresh instance, and the VMs' list


async def test_the_finalizer_goes_on_a_decision_made_on_fresh_reads(
    in_process: WatchFedReconciler,
) -> None:
    """The cache says "no VM" (its VM watch is behind) while a VM labelled with the instance
    exists. The pass that removes the finalizer re-reads the instance and lists the VMs fresh
    and decides again: the status written with the removal names the VM the server has."""
    key = await create(
        in_process,
        "stale-vms",
        annotations={names.MANAGEMENT_STATE_ANNOTATION: names.MANAGEMENT_STATE_MANUAL},
        finalizers=[HOLD],
    )
    await in_process.reconciler.reconcile(key)  # lists the (no) VMs fresh: the cache knows "none"
    first = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    assert names.OPERATOR_FINALIZER in (first or {})["metadata"]["finalizers"]
    vm_path = resource_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, namespace=INSTANCE_NAMESPACE
    )
    labels = {names.VM_INSTANCE_LABEL: key.name}
    await in_process.kube.create(
        vm_path,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "left-behind", "labels": labels},
            "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}}},
        },
    )
    await in_process.kube.delete(f"{CI_PATH}/{key.name}")
    deleting = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    assert deleting is not None and deleting["metadata"].get("deletionTimestamp")
    in_process.cache.instance_event("MODIFIED", deleting)  # the instance watch is up to date
    assert in_process.cache.vm_observations(key.name) == ()  # the VM watch is not

    await in_process.reconciler.reconcile(key)
    after = await in_process.kube.get(f"{CI_PATH}/{key.name}")
    assert after is not None
    assert after["metadata"]["finalizers"] == [HOLD]
    reference = status(after).get("virtualMachineReference") or {}
    assert reference.get("kubeVirtVirtualMachineName") == "left-behind", status(after)


async def test_a_vmi_is_deleted_on_a_decision_made_on_fresh_reads(
    in_process: WatchFedReconciler,
) -> None:
    """The cache knows one VM of the instance (its VM watch is behind) while a second VM
    labelled with it exists. A restart request would delete the one VM's VMI on the cached
    reads; the pass lists the VMs fresh first, finds two, and deletes nothing
    (RestartFailed: which to restart is unclear)."""
    in_process.feed()
    key = await create(in_process, "restart-stale")

    async def one_pass() -> dict[str, Any] | None:
        await in_process.reconciler.reconcile(key)
        return await in_process.kube.get(f"{CI_PATH}/{key.name}")

    await until(one_pass, lambda obj: status(obj).get("phase") == "Ready", within=60)
    await until(lambda: caught_up(in_process, key), bool, within=30)
    [vm] = in_process.cache.vm_observations(key.name)
    vmi_path = resource_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL, namespace=vm.namespace
    )

    async def vmi_uid() -> str | None:
        found = await in_process.kube.get(f"{vmi_path}/{vm.name}")
        return None if found is None else str(found["metadata"]["uid"])

    before = await until(vmi_uid, bool, within=30, what="the VM's VMI")
    for task in in_process.feeds:  # from here on the VM watch is behind
        task.cancel()
    await asyncio.gather(*in_process.feeds, return_exceptions=True)
    labels = {names.VM_INSTANCE_LABEL: key.name}
    vm_path = resource_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, namespace=vm.namespace
    )
    await in_process.kube.create(
        vm_path,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "second", "labels": labels},
            "spec": {"runStrategy": "Halted", "template": {"metadata": {"labels": labels}}},
        },
    )
    requested = await in_process.kube.merge_patch(
        f"{CI_PATH}/{key.name}", {"spec": {"restartRequestedAt": "2030-01-01T00:00:00Z"}}
    )
    in_process.cache.instance_event("MODIFIED", requested)  # the instance watch is up to date
    assert len(in_process.cache.vm_observations(key.name)) == 1  # the VM watch is not

    def restart_failed(obj: dict[str, Any] | None) -> bool:
        found = [c for c in status(obj).get("conditions") or [] if c.get("type") == "RestartFailed"]
        return bool(found) and found[0].get("reason") == "NoVMReference"

    await until(one_pass, restart_failed, within=60, what="RestartFailed NoVMReference")
    assert await vmi_uid() == before, "the VMI was deleted on a stale list of VMs"
