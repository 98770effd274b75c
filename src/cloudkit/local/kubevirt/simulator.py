"""The VirtualMachine simulator: plays KubeVirt's VM controller against any API server.

It registers the VirtualMachine CRD, lists and watches VMs in all namespaces (re-listing after
a 410 or a dropped connection), and drives each VM towards its runStrategy: a running VM
reports Ready after `boot_seconds`, a halted one Stopped, and a deleted one keeps KubeVirt's
finalizer for `stop_seconds` before releasing it. The waits here are the simulated durations;
everything else reacts to watch events. It touches only VirtualMachines and their CRD.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import aiohttp

from cloudkit.api import names
from cloudkit.local.kubevirt.crd import VM_CRD_NAME, vm_crd_manifest
from cloudkit.local.stack_kube import KubeClient, KubeError, WatchExpired, resource_path

log = logging.getLogger("cloudkit.local.kubevirt")

VM_FINALIZER: Final = "kubevirt.io/virtualMachineControllerFinalize"
CRD_PATH: Final = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
ALL_VMS_PATH: Final = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)
WATCH_TIMEOUT_S: Final = 300
ESTABLISH_TIMEOUT_S: Final = 30.0

Key = tuple[str, str]


class Goal(StrEnum):
    BOOT = "boot"
    HALT = "halt"
    FINALIZE = "finalize"


# --- pure: what a VM needs, and the status each phase shows ------------------------------------


def run_strategy(vm: dict[str, Any]) -> str:
    """spec.runStrategy, else the legacy spec.running flag, else Always."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    if spec.get("running") is False:
        return "Halted"
    return "Always"


def goal_for(vm: dict[str, Any]) -> Goal | None:
    """The work a VM still needs, or None when its status already matches its spec."""
    meta = vm.get("metadata") or {}
    status = vm.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Goal.FINALIZE if VM_FINALIZER in (meta.get("finalizers") or []) else None
    if run_strategy(vm) == "Halted":
        return None if status.get("printableStatus") == "Stopped" else Goal.HALT
    if status.get("ready") is True and status.get("printableStatus") == "Running":
        return None
    return Goal.BOOT


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
        "lastProbeTime": None,
    }


def starting_status() -> dict[str, Any]:
    return {
        "printableStatus": "Starting",
        "created": True,
        "ready": False,
        "conditions": [_ready("False", "GuestNotRunning", "Guest VM is not reported as running")],
    }


def running_status() -> dict[str, Any]:
    return {
        "printableStatus": "Running",
        "created": True,
        "ready": True,
        "conditions": [_ready("True", "")],
    }


def stopping_status(printable: str = "Stopping") -> dict[str, Any]:
    return {
        "printableStatus": printable,
        "created": True,
        "ready": False,
        "conditions": [_ready("False", "GuestNotRunning", "VMI is shutting down")],
    }


def stopped_status() -> dict[str, Any]:
    return {
        "printableStatus": "Stopped",
        "created": False,
        "ready": False,
        "conditions": [_ready("False", "VMINotExists", "VMI does not exist")],
    }


def _key(vm: dict[str, Any]) -> Key:
    meta = vm.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # opaque resourceVersions (not the local server's) disable the check
        return 0


def _vm_path(key: Key, subresource: str | None = None) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        names.VM_PLURAL,
        namespace=key[0],
        name=key[1],
        subresource=subresource,
    )


# --- I/O ----------------------------------------------------------------------------------------


@dataclass
class _Work:
    goal: Goal
    task: asyncio.Task[None]


@dataclass
class VmSimulator:
    """One controller loop; `start()` returns once the CRD is served and VMs are listed."""

    client: KubeClient
    boot_seconds: float
    stop_seconds: float
    _work: dict[Key, _Work] = field(default_factory=dict)
    _written: dict[Key, int] = field(default_factory=dict)
    """The resourceVersion of our own last write per VM: older events are stale echoes."""
    _loop_task: asyncio.Task[None] | None = None
    _synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        await register_vm_crd(self.client)
        self._loop_task = asyncio.create_task(self._run(), name="vm-simulator")
        synced = asyncio.create_task(self._synced.wait())
        done, _ = await asyncio.wait({synced, self._loop_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._loop_task in done:
            synced.cancel()
            self._loop_task.result()  # re-raises why the loop ended
            raise RuntimeError("VM simulator stopped before its first list")

    async def stop(self) -> None:
        tasks = [w.task for w in self._work.values()]
        if self._loop_task is not None:
            tasks.append(self._loop_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._work.clear()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                resource_version = await self._relist()
                self._synced.set()
                backoff = 0.2
                while True:  # a watch that ends cleanly (timeout) resumes from the last RV
                    resource_version = await self._follow(resource_version)
            except WatchExpired:
                log.info("watch expired; listing VirtualMachines again")
            except (aiohttp.ClientError, KubeError, OSError, TimeoutError) as error:
                log.warning("VirtualMachine watch failed (%s); retrying", _describe(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _relist(self) -> str:
        listing = await self.client.list_objects(ALL_VMS_PATH)
        seen: set[Key] = set()
        for vm in listing.get("items") or []:
            seen.add(_key(vm))
            await self._on_vm(vm)
        for key in set(self._work) - seen:
            self._forget(key)
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    async def _follow(self, resource_version: str) -> str:
        async for kind, obj in self.client.watch(
            ALL_VMS_PATH, resource_version, timeoutSeconds=str(WATCH_TIMEOUT_S)
        ):
            resource_version = str(
                (obj.get("metadata") or {}).get("resourceVersion") or resource_version
            )
            if kind == "DELETED":
                self._forget(_key(obj))
                log.info("vm %s/%s: deleted", *_key(obj))
            elif kind in ("ADDED", "MODIFIED"):
                await self._on_vm(obj)
        return resource_version

    def _forget(self, key: Key) -> None:
        self._written.pop(key, None)
        work = self._work.pop(key, None)
        if work is not None:
            work.task.cancel()

    async def _on_vm(self, vm: dict[str, Any]) -> None:
        key = _key(vm)
        meta = vm.get("metadata") or {}
        if _rv(vm) < self._written.get(key, 0):
            return  # already superseded by our own later write; its event follows
        if not meta.get("deletionTimestamp") and VM_FINALIZER not in (meta.get("finalizers") or []):
            await self._add_finalizer(key, vm)
        goal = goal_for(vm)
        current = self._work.get(key)
        if current is not None and current.goal == goal and not current.task.done():
            return
        if current is not None:
            current.task.cancel()
            self._work.pop(key, None)
        if goal is None:
            return
        action = {Goal.BOOT: self._boot, Goal.HALT: self._halt, Goal.FINALIZE: self._finalize}
        task = asyncio.create_task(_guarded(key, goal, action[goal], vm))
        self._work[key] = _Work(goal, task)

    async def _add_finalizer(self, key: Key, vm: dict[str, Any]) -> None:
        meta = vm.get("metadata") or {}
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}
        ]
        if meta.get("finalizers"):
            ops.append({"op": "add", "path": "/metadata/finalizers/-", "value": VM_FINALIZER})
        else:
            ops.append({"op": "add", "path": "/metadata/finalizers", "value": [VM_FINALIZER]})
        try:
            self._remember(key, await self.client.json_patch(_vm_path(key), ops))
        except KubeError as error:
            # 422: the VM changed since this event (the next event retries); 404: it is gone.
            if error.status not in (404, 409, 422):
                raise

    def _remember(self, key: Key, written: dict[str, Any]) -> None:
        self._written[key] = max(self._written.get(key, 0), _rv(written))

    async def _write_status(self, key: Key, status: dict[str, Any]) -> None:
        try:
            self._remember(
                key, await self.client.merge_patch(_vm_path(key, "status"), {"status": status})
            )
        except KubeError as error:
            if error.status != 404:
                raise

    async def _boot(self, key: Key, vm: dict[str, Any]) -> None:
        if (vm.get("status") or {}).get("printableStatus") != "Starting":
            await self._write_status(key, starting_status())
        log.info("vm %s/%s: starting (%.1fs)", *key, self.boot_seconds)
        await asyncio.sleep(self.boot_seconds)  # the simulated boot
        await self._write_status(key, running_status())
        log.info("vm %s/%s: running, ready", *key)

    async def _halt(self, key: Key, vm: dict[str, Any]) -> None:
        if (vm.get("status") or {}).get("created"):
            await self._write_status(key, stopping_status())
            log.info("vm %s/%s: stopping (%.1fs)", *key, self.stop_seconds)
            await asyncio.sleep(self.stop_seconds)  # the simulated shutdown
        await self._write_status(key, stopped_status())
        log.info("vm %s/%s: stopped", *key)

    async def _finalize(self, key: Key, vm: dict[str, Any]) -> None:
        if (vm.get("status") or {}).get("printableStatus") != "Terminating":
            await self._write_status(key, stopping_status("Terminating"))
        log.info("vm %s/%s: terminating (%.1fs)", *key, self.stop_seconds)
        await asyncio.sleep(self.stop_seconds)  # the simulated shutdown
        for _ in range(10):
            current = await self.client.get(_vm_path(key))
            finalizers = ((current or {}).get("metadata") or {}).get("finalizers") or []
            if VM_FINALIZER not in finalizers:
                return
            index = finalizers.index(VM_FINALIZER)
            path = f"/metadata/finalizers/{index}"
            try:
                await self.client.json_patch(
                    _vm_path(key),
                    [
                        {"op": "test", "path": path, "value": VM_FINALIZER},
                        {"op": "remove", "path": path},
                    ],
                )
                log.info("vm %s/%s: finalizer released", *key)
                return
            except KubeError as error:
                if error.status == 404:
                    return
                if error.status not in (409, 422):
                    raise


async def _guarded(
    key: Key,
    goal: Goal,
    action: Callable[[Key, dict[str, Any]], Awaitable[None]],
    vm: dict[str, Any],
) -> None:
    """Run one VM's work; failures are logged (the next event or re-list retries)."""
    try:
        await action(key, vm)
    except (aiohttp.ClientError, KubeError, OSError, TimeoutError) as error:
        log.warning("vm %s/%s: %s failed: %s", key[0], key[1], goal, _describe(error))


def _describe(error: BaseException) -> str:
    return str(error) or error.__class__.__name__


async def register_vm_crd(client: KubeClient) -> None:
    """Create the VirtualMachine CRD (if absent) and wait until it is Established."""
    await client.ensure(CRD_PATH, vm_crd_manifest())
    await wait_established(client, VM_CRD_NAME)


async def wait_established(client: KubeClient, crd_name: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ESTABLISH_TIMEOUT_S
    while True:
        crd = await client.get(f"{CRD_PATH}/{crd_name}")
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"CRD {crd_name} not Established after {ESTABLISH_TIMEOUT_S}s")
        await asyncio.sleep(0.05)


@dataclass
class VmSimulatorHandle:
    """A running simulator; `stop()` cancels its work and closes its connection."""

    simulator: VmSimulator
    client: KubeClient

    async def stop(self) -> None:
        await self.simulator.stop()
        await self.client.close()


async def start_vm_simulator(
    kubeconfig: Path, *, boot_seconds: float, stop_seconds: float
) -> VmSimulatorHandle:
    client = KubeClient.from_kubeconfig(kubeconfig)
    await client.__aenter__()
    simulator = VmSimulator(client, boot_seconds=boot_seconds, stop_seconds=stop_seconds)
    try:
        await simulator.start()
    except BaseException:
        await simulator.stop()
        await client.close()
        raise
    return VmSimulatorHandle(simulator, client)
