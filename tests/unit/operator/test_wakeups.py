"""When the shell's watch handlers wake an instance: at once for its own changes, after the
settle window for its VMs' and VMIs' (routing.VM_SETTLE_S), so that KubeVirt's quick succession
of changes costs one pass and one status write; under upstream's policy (the benchmarks'
baseline) a VM's change wakes it at once, as upstream's controller does (reference §3.1).
The handlers are the Runtime's, called as its watches call them (watches.py); the queue is the
real one (not started: only its due times are read).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from cloudkit.api import names
from cloudkit.operator.cache import WatchCache
from cloudkit.operator.kube import Kube
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.reconcile import Reconciler
from cloudkit.operator.routing import VM_SETTLE_S
from cloudkit.operator.settings import OperatorSettings, load_settings
from cloudkit.operator.shell import Runtime
from cloudkit.operator.startup import build_provider, lifecycle_config
from cloudkit.operator.workqueue import WorkQueue

NAMESPACE = "cloudkit-computeinstance"
KEY = InstanceKey(NAMESPACE, "ci-1")
ENVIRONMENT = {
    "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
    "CLOUDKIT_AAP_URL": "http://aap.invalid/api",
    "CLOUDKIT_AAP_TOKEN": "t",
    "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
    "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
    "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": NAMESPACE,
}
SETTINGS = load_settings(ENVIRONMENT)
UPSTREAM_SETTINGS = load_settings({**ENVIRONMENT, "CLOUDKIT_POLL_POLICY": "fixed"})
Handler = Callable[[str | None, dict[str, Any]], None]


@pytest.fixture
async def shell() -> AsyncIterator[tuple[Runtime, dict[str, Handler]]]:
    async with _shell(SETTINGS) as made:
        yield made


@pytest.fixture
async def upstream_shell() -> AsyncIterator[tuple[Runtime, dict[str, Handler]]]:
    async with _shell(UPSTREAM_SETTINGS) as made:
        yield made


@contextlib.asynccontextmanager
async def _shell(settings: OperatorSettings) -> AsyncIterator[tuple[Runtime, dict[str, Handler]]]:
    reconciler = Reconciler(
        Kube(client.ApiClient(configuration=client.Configuration())),
        build_provider(settings),
        lifecycle_config(settings),
        OperatorMetrics(CollectorRegistry()),
        cache=WatchCache(),
    )
    runtime = Runtime(settings, reconciler, WorkQueue(reconciler))
    handlers: dict[str, Handler] = {
        "instance_changed": runtime.instance_changed,
        "vm_changed": runtime.vm_changed,
        "vmi_changed": runtime.vmi_changed,
    }
    try:
        yield runtime, handlers
    finally:
        await reconciler.provider.close()
        await reconciler.kube.close()


def instance() -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"namespace": NAMESPACE, "name": "ci-1", "resourceVersion": "5"},
        "spec": {"templateID": "t"},
        "status": {"phase": "Progressing"},
    }


def vm(kind: str = "VirtualMachine") -> dict[str, Any]:
    labels = {names.VM_INSTANCE_LABEL: "ci-1"}
    return {"kind": kind, "metadata": {"namespace": "tenant", "name": "vm-1", "labels": labels}}


async def call(handler: Handler, runtime: Runtime, kind: str, obj: dict[str, Any]) -> None:
    handler(kind, obj)


async def test_vm_and_vmi_changes_wake_the_instance_after_the_settle_window(
    shell: tuple[Runtime, dict[str, Handler]],
) -> None:
    runtime, handlers = shell
    await call(handlers["instance_changed"], runtime, "ADDED", instance())
    runtime.queue.forget(KEY)
    await call(handlers["vm_changed"], runtime, "ADDED", vm())
    due = runtime.queue.due_in(KEY)
    assert due is not None and VM_SETTLE_S - 0.1 < due <= VM_SETTLE_S
    # The VMI's change right after joins the same pass (the earliest due time is kept).
    await call(handlers["vmi_changed"], runtime, "ADDED", vm("VirtualMachineInstance"))
    again = runtime.queue.due_in(KEY)
    assert again is not None and VM_SETTLE_S - 0.1 < again <= due
    assert len(runtime.queue) == 1


async def test_the_instance_own_change_wakes_it_at_once_even_inside_the_window(
    shell: tuple[Runtime, dict[str, Handler]],
) -> None:
    runtime, handlers = shell
    await call(handlers["instance_changed"], runtime, "ADDED", instance())
    runtime.queue.forget(KEY)
    await call(handlers["vm_changed"], runtime, "MODIFIED", vm())
    changed = {**instance(), "metadata": {**instance()["metadata"], "resourceVersion": "6"}}
    await call(handlers["instance_changed"], runtime, "MODIFIED", changed)
    due = runtime.queue.due_in(KEY)
    assert due is not None and due <= 0.05


async def test_under_upstream_policy_vm_and_vmi_changes_wake_the_instance_at_once(
    upstream_shell: tuple[Runtime, dict[str, Handler]],
) -> None:
    runtime, handlers = upstream_shell
    await call(handlers["instance_changed"], runtime, "ADDED", instance())
    for handler, kind in (
        ("vm_changed", "VirtualMachine"),
        ("vmi_changed", "VirtualMachineInstance"),
    ):
        runtime.queue.forget(KEY)
        await call(handlers[handler], runtime, "MODIFIED", vm(kind))
        due = runtime.queue.due_in(KEY)
        assert due is not None and due <= 0.05, (handler, due)
