"""The VirtualMachine simulator: plays KubeVirt's VM controller against any API server.

It registers the VirtualMachine and VirtualMachineInstance CRDs, lists and watches both in all
namespaces (re-listing after a 410 or a dropped connection), and drives each VM towards its
runStrategy: a running VM gets a VirtualMachineInstance (states.vmi_manifest: the VM's
name, template labels and an owner reference; creationTimestamp set by the API server) and
reports Ready after `boot_seconds`, when its VMI turns Running with an address
(states.vmi_address). A halted VM loses its VMI and reports Stopped; a deleted one keeps
KubeVirt's finalizer for `stop_seconds`, then its VMI is deleted and the finalizer released.
When the VMI of a running VM is deleted (how a restart is asked for) the simulator re-creates
it, as KubeVirt does: a new VMI with a new creationTimestamp, the VM Starting and not Ready until
`boot_seconds` have passed again. The waits here are the simulated durations; everything else
reacts to watch events. It touches only VirtualMachines, their VMIs and their CRDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from cloudkit.api import names
from cloudkit.local.kubevirt import states
from cloudkit.local.kubevirt.crd import (
    VM_CRD_NAME,
    VMI_CRD_NAME,
    vm_crd_manifest,
    vmi_crd_manifest,
)
from cloudkit.local.kubevirt.states import VM_FINALIZER, Goal, Key, goal_for, key_of
from cloudkit.local.stack.kube import (
    KubeClient,
    KubeError,
    follower,
    list_version,
    resource_path,
)
from cloudkit.watching import Cursor, follow

log = logging.getLogger("cloudkit.local.kubevirt")

CRD_PATH: Final = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
ALL_VMS_PATH: Final = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)
ALL_VMIS_PATH: Final = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL)
WATCH_TIMEOUT_S: Final = 300
ESTABLISH_TIMEOUT_S: Final = 30.0
_TRANSIENT = (aiohttp.ClientError, KubeError, OSError, TimeoutError)

__all__ = ["VmSimulator", "VmSimulatorHandle", "start_vm_simulator"]


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # opaque resourceVersions (not the local server's) disable the check
        return 0


def _path(plural: str, key: Key, subresource: str | None = None) -> str:
    return resource_path(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        plural,
        namespace=key[0],
        name=key[1],
        subresource=subresource,
    )


def _vm_path(key: Key, subresource: str | None = None) -> str:
    return _path(names.VM_PLURAL, key, subresource)


def _vmi_path(key: Key) -> str:
    return _path(names.VMI_PLURAL, key)


@dataclass
class _Work:
    goal: Goal
    task: asyncio.Task[None]


@dataclass
class VmSimulator:
    """One controller; `start()` returns once the CRDs are served and VMs and VMIs are listed."""

    client: KubeClient
    boot_seconds: float
    stop_seconds: float
    _work: dict[Key, _Work] = field(default_factory=dict)
    _written: dict[Key, int] = field(default_factory=dict)
    """The resourceVersion of our own last write per VM: older events are stale echoes."""
    _vmis: set[Key] = field(default_factory=set)
    """VMIs that exist, from their watch and our own creates."""
    _deleted_vmis: set[Key] = field(default_factory=set)
    """VMIs we deleted ourselves (a halt, a deletion): their DELETED event is no restart, so
    it needs no read of the VM (one GET per lifecycle less)."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await register_crds(self.client)
        # VMIs first, so that the first pass over the VMs knows which ones have a VMI.
        await self._start_watch("vmi", ALL_VMIS_PATH, self._relist_vmis, self._on_vmi_event)
        await self._start_watch("vm", ALL_VMS_PATH, self._relist_vms, self._on_vm_event)

    async def stop(self) -> None:
        tasks = [w.task for w in self._work.values()] + self._tasks
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._work.clear()
        self._tasks.clear()

    # --- watching ---------------------------------------------------------------------------

    async def _start_watch(
        self,
        what: str,
        path: str,
        relist: Callable[[], Awaitable[str | None]],
        on_event: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        """Follow `path` (cloudkit.watching) in a task; return once it has listed."""
        synced = asyncio.Event()
        follow_path = follower(
            self.client,
            path,
            relist=relist,
            on_event=lambda event: on_event(*event),
            timeoutSeconds=str(WATCH_TIMEOUT_S),
        )
        cursor = Cursor(path, transient=_TRANSIENT)
        task = asyncio.create_task(
            follow(follow_path, cursor, synced=synced.set), name=f"sim-{what}"
        )
        self._tasks.append(task)
        waiting = asyncio.create_task(synced.wait())
        done, _ = await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiting.cancel()
            task.result()  # re-raises why the loop ended
            raise RuntimeError(f"VM simulator stopped before its first {what} list")

    async def _relist_vms(self) -> str | None:
        listing = await self.client.list_objects(ALL_VMS_PATH)
        seen: set[Key] = set()
        for vm in listing.get("items") or []:
            seen.add(key_of(vm))
            await self._on_vm(vm)
        for key in set(self._work) - seen:
            self._forget(key)
        return list_version(listing)

    async def _on_vm_event(self, kind: str, vm: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._forget(key_of(vm))
            log.info("vm %s/%s: deleted", *key_of(vm))
        elif kind in ("ADDED", "MODIFIED"):
            await self._on_vm(vm)

    async def _relist_vmis(self) -> str | None:
        listing = await self.client.list_objects(ALL_VMIS_PATH)
        listed = {key_of(vmi) for vmi in listing.get("items") or []}
        vanished = self._vmis - listed
        self._vmis = listed
        for key in vanished:  # deleted while the watch was down
            await self._vmi_gone(key)
        return list_version(listing)

    async def _on_vmi_event(self, kind: str, vmi: dict[str, Any]) -> None:
        key = key_of(vmi)
        if kind == "DELETED":
            self._vmis.discard(key)
            if key in self._deleted_vmis:
                self._deleted_vmis.discard(key)
                return
            await self._vmi_gone(key)
        elif kind in ("ADDED", "MODIFIED"):
            self._vmis.add(key)

    def _forget(self, key: Key) -> None:
        self._written.pop(key, None)
        work = self._work.pop(key, None)
        if work is not None:
            work.task.cancel()

    # --- deciding ---------------------------------------------------------------------------

    async def _on_vm(self, vm: dict[str, Any]) -> None:
        key = key_of(vm)
        meta = vm.get("metadata") or {}
        if _rv(vm) < self._written.get(key, 0):
            return  # already superseded by our own later write; its event follows
        if not meta.get("deletionTimestamp") and VM_FINALIZER not in (meta.get("finalizers") or []):
            await self._add_finalizer(key, vm)
        goal = goal_for(vm, has_vmi=key in self._vmis)
        current = self._work.get(key)
        if current is not None and current.goal == goal and not current.task.done():
            return
        self._begin(key, goal, vm)

    async def _vmi_gone(self, key: Key) -> None:
        """A VMI was deleted: a VM that should run boots again with a new one (a restart)."""
        vm = await self.client.get(_vm_path(key))
        if vm is None or goal_for(vm, has_vmi=False) is not Goal.BOOT:
            return  # no VM, or one halting or going away: its own events drive it
        log.info("vm %s/%s: VMI deleted; starting a new one", *key)
        self._begin(key, Goal.BOOT, vm)

    def _begin(self, key: Key, goal: Goal | None, vm: dict[str, Any]) -> None:
        """Replace the VM's current work with `goal` (None: nothing left to do)."""
        current = self._work.pop(key, None)
        if current is not None:
            current.task.cancel()
        if goal is None:
            return
        action = {Goal.BOOT: self._boot, Goal.HALT: self._halt, Goal.FINALIZE: self._finalize}
        task = asyncio.create_task(_guarded(key, goal, action[goal], vm))
        self._work[key] = _Work(goal, task)

    # --- acting -----------------------------------------------------------------------------

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
            await self._write_status(key, states.starting_status())
        try:
            collection = resource_path(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL, namespace=key[0]
            )
            await self.client.create(collection, states.vmi_manifest(vm))
        except KubeError as error:
            if error.status != 409:  # 409: it exists already (a boot resumed after a restart)
                raise
        self._vmis.add(key)
        log.info("vm %s/%s: starting (%.1fs)", *key, self.boot_seconds)
        await asyncio.sleep(self.boot_seconds)  # the simulated boot
        running = {"status": states.vmi_running_status(key)}
        try:
            await self.client.merge_patch(_vmi_path(key), running)
        except KubeError as error:
            if error.status == 404:
                return  # deleted while booting: its DELETED event starts a new boot
            raise
        await self._write_status(key, states.running_status())
        log.info("vm %s/%s: running, ready", *key)

    async def _halt(self, key: Key, vm: dict[str, Any]) -> None:
        if (vm.get("status") or {}).get("created") or key in self._vmis:
            await self._write_status(key, states.stopping_status())
            log.info("vm %s/%s: stopping (%.1fs)", *key, self.stop_seconds)
            await asyncio.sleep(self.stop_seconds)  # the simulated shutdown
        await self._write_status(key, states.stopped_status())
        # Last: the VMI's DELETED event must find the VM Stopped, with nothing left to do.
        await self._delete_vmi(key)
        log.info("vm %s/%s: stopped", *key)

    async def _delete_vmi(self, key: Key) -> None:
        self._deleted_vmis.add(key)  # before the request: its event may arrive first
        try:
            ours = await self.client.delete(_vmi_path(key))
        except BaseException:
            self._deleted_vmis.discard(key)
            raise
        if not ours:
            self._deleted_vmis.discard(key)  # already gone: its DELETED event was not ours
        self._vmis.discard(key)

    async def _finalize(self, key: Key, vm: dict[str, Any]) -> None:
        if (vm.get("status") or {}).get("printableStatus") != "Terminating":
            await self._write_status(key, states.stopping_status("Terminating"))
        log.info("vm %s/%s: terminating (%.1fs)", *key, self.stop_seconds)
        await asyncio.sleep(self.stop_seconds)  # the simulated shutdown
        await self._delete_vmi(key)
        await self._release_finalizer(key, vm)

    async def _release_finalizer(self, key: Key, seen: dict[str, Any]) -> None:
        """Remove KubeVirt's finalizer; the first try trusts the version `seen` (its position
        is tested in the patch, so a stale one fails and is read again)."""
        current: dict[str, Any] | None = seen
        for _ in range(10):
            if current is None:
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
                current = None  # changed since: read it again


async def _guarded(
    key: Key,
    goal: Goal,
    action: Callable[[Key, dict[str, Any]], Awaitable[None]],
    vm: dict[str, Any],
) -> None:
    """Run one VM's work; failures are logged (the next event or re-list retries)."""
    try:
        await action(key, vm)
    except _TRANSIENT as error:
        log.warning("vm %s/%s: %s failed: %s", key[0], key[1], goal, _describe(error))


def _describe(error: BaseException) -> str:
    return str(error) or error.__class__.__name__


async def register_crds(client: KubeClient) -> None:
    """Create the VirtualMachine and VirtualMachineInstance CRDs (if absent); wait until both
    are Established."""
    await client.ensure(CRD_PATH, vm_crd_manifest())
    await client.ensure(CRD_PATH, vmi_crd_manifest())
    await wait_established(client, VM_CRD_NAME)
    await wait_established(client, VMI_CRD_NAME)


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
