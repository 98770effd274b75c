"""`cloudkit demo`: the local stack, three instances, one deleted mid-provisioning, a verdict.

It starts the stack in DIR/demo (wiped first), creates three ComputeInstances, shows their
progress in a live table, deletes one while its provision job runs, and waits for the outcome:
two Ready, the third gone with its provision job Canceled, exactly one deprovision job and no
VM left behind. Every instance version is recorded from a watch, so the checks see each state
the operator wrote, not a sample. Exit code 0 only if every check passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cloudkit.api import names
from cloudkit.local.private import open_private_log, private_dir
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackError, StackHandle, start_stack
from cloudkit.local.stack.kube import (
    KubeClient,
    KubeError,
    WatchEvent,
    follower,
    list_version,
    resource_path,
)
from cloudkit.watching import Cursor, follow

KEEP = ("demo-web", "demo-db")
DOOMED = "demo-batch"
VM_BOOT_SECONDS = 5.0
DEADLINE_S = 150.0

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
ALL_VMS = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)


def instance_body(name: str, cores: int, memory_gib: int) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": INSTANCE_NAMESPACE},
        "spec": {
            "templateID": "ocp_virt_vm",
            "image": {"sourceType": "registry", "sourceRef": "quay.io/containerdisks/fedora:41"},
            "cores": cores,
            "memoryGiB": memory_gib,
            "bootDisk": {"sizeGiB": 20},
            "runStrategy": "Always",
        },
    }


@dataclass
class Observed:
    """Everything seen of the instances and VMs; `history` holds every instance version."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.instances.pop(name, None)
            self.gone.add(name)
            return
        self.instances[name] = obj
        self.history.setdefault(name, []).append(obj)


def _job(obj: dict[str, Any] | None, key: str) -> dict[str, Any]:
    return ((obj or {}).get("status") or {}).get(key) or {}


async def _follow_instances(kube: KubeClient, seen: Observed) -> None:
    async def relist() -> str | None:
        listing = await kube.list_objects(CI_PATH)
        for item in listing.get("items") or []:
            seen.record("ADDED", item)
        return list_version(listing)

    async def on_event(event: WatchEvent) -> None:
        kind, obj = event
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            seen.record(kind, obj)

    instances = follower(kube, CI_PATH, relist=relist, on_event=on_event, timeoutSeconds="300")
    await follow(instances, Cursor(CI_PATH, transient=(aiohttp.ClientError, KubeError, OSError)))


async def _poll_vms(kube: KubeClient, seen: Observed) -> None:
    while True:
        listing = await kube.list_objects(ALL_VMS)
        seen.vms = {
            (vm["metadata"].get("labels") or {}).get(names.VM_INSTANCE_LABEL, ""): vm
            for vm in listing.get("items") or []
        }
        await asyncio.sleep(1.0)


def _table(seen: Observed, elapsed: float, note: str) -> Table:
    table = Table(title=f"cloudkit demo  {elapsed:5.1f}s  {note}", title_justify="left")
    for column in ("instance", "phase", "provision job", "deprovision job", "VM"):
        table.add_column(column)
    for name in (*KEEP, DOOMED):
        obj = seen.instances.get(name)
        if obj is None and name in seen.gone:
            table.add_row(name, Text("deleted", style="dim"), "", "", _vm_cell(seen, name))
            continue
        phase = ((obj or {}).get("status") or {}).get("phase") or "-"
        style = {"Ready": "green", "Failed": "red", "Deleting": "yellow"}.get(phase, "")
        table.add_row(
            name,
            Text(phase, style=style),
            _job_cell(_job(obj, "provisionJob")),
            _job_cell(_job(obj, "deprovisionJob")),
            _vm_cell(seen, name),
        )
    return table


def _job_cell(job: dict[str, Any]) -> str:
    if not job:
        return "-"
    text = f"#{job.get('id') or '?'} {job.get('state', '')}"
    message = job.get("message")
    return f"{text} ({message})" if message else text


def _vm_cell(seen: Observed, name: str) -> str:
    vm = seen.vms.get(name)
    if vm is None:
        return "-"
    return str((vm.get("status") or {}).get("printableStatus") or "Pending")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def verdict(seen: Observed) -> list[Check]:
    """The demo's claims, each checked on what the watch recorded."""
    checks = [
        Check(
            f"{name} is Ready",
            ((seen.instances.get(name) or {}).get("status") or {}).get("phase") == "Ready",
            str(((seen.instances.get(name) or {}).get("status") or {}).get("phase")),
        )
        for name in KEEP
    ]
    history = seen.history.get(DOOMED, [])
    checks.append(Check(f"{DOOMED} is gone", DOOMED in seen.gone, ""))
    last_provision = _job(history[-1] if history else None, "provisionJob")
    checks.append(
        Check(
            f"{DOOMED}: provision job Canceled",
            last_provision.get("state") == "Canceled",
            _job_cell(last_provision),
        )
    )
    deprovision_ids = {
        _job(obj, "deprovisionJob").get("id") for obj in history if _job(obj, "deprovisionJob")
    } - {None, ""}
    checks.append(
        Check(
            f"{DOOMED}: exactly one deprovision job",
            len(deprovision_ids) == 1,
            ", ".join(sorted(str(i) for i in deprovision_ids)) or "none",
        )
    )
    before_deprovision = [
        _job(obj, "provisionJob").get("state")
        for obj in history
        if _job(obj, "deprovisionJob").get("id")
    ]
    checks.append(
        Check(
            f"{DOOMED}: provision job terminal before the deprovision job was recorded",
            bool(before_deprovision)
            and before_deprovision[0] in ("Canceled", "Failed", "Succeeded"),
            str(before_deprovision[0]) if before_deprovision else "no deprovision job seen",
        )
    )
    checks.append(Check(f"{DOOMED}: no VM left behind", DOOMED not in seen.vms, ""))
    return checks


async def _drive(handle: StackHandle, console: Console) -> list[Check]:
    seen = Observed()
    async with KubeClient.from_kubeconfig(handle.kubeconfig) as kube:
        followers = [
            asyncio.create_task(_follow_instances(kube, seen)),
            asyncio.create_task(_poll_vms(kube, seen)),
        ]
        try:
            for name, cores, memory in ((KEEP[0], 2, 4), (KEEP[1], 4, 8), (DOOMED, 1, 2)):
                await kube.create(CI_PATH, instance_body(name, cores, memory))
            await _watch_progress(kube, seen, handle, console)
        finally:
            for task in followers:
                task.cancel()
            for task in followers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # One last authoritative read of the VMs for the orphan check.
        listing = await kube.list_objects(ALL_VMS)
        seen.vms = {
            (vm["metadata"].get("labels") or {}).get(names.VM_INSTANCE_LABEL, ""): vm
            for vm in listing.get("items") or []
        }
    return verdict(seen)


async def _watch_progress(
    kube: KubeClient, seen: Observed, handle: StackHandle, console: Console
) -> None:
    started = time.monotonic()
    deleted_at: float | None = None
    note = "creating three instances"
    with Live(_table(seen, 0, note), console=console, refresh_per_second=4) as live:
        while True:
            elapsed = time.monotonic() - started
            doomed = seen.instances.get(DOOMED)
            if deleted_at is None and _job(doomed, "provisionJob").get("state") == "Running":
                await kube.delete(f"{CI_PATH}/{DOOMED}")
                deleted_at = elapsed
                note = f"deleted {DOOMED} while its provision job runs"
            live.update(_table(seen, elapsed, note))
            if handle.failed.is_set():
                raise StackError(handle.failure or "the stack failed")
            if _finished(seen) or elapsed > DEADLINE_S:
                live.update(_table(seen, elapsed, "done" if _finished(seen) else "timed out"))
                break
            await asyncio.sleep(0.25)
    console.print()


def _finished(seen: Observed) -> bool:
    ready = all(
        ((seen.instances.get(n) or {}).get("status") or {}).get("phase") == "Ready" for n in KEEP
    )
    return ready and DOOMED in seen.gone and DOOMED not in seen.vms


async def _demo(provider: str, state_dir: Path, console: Console) -> int:
    if provider != "aap":
        # The verdict is AAP direct's contract (cancel, then exactly one deprovision job);
        # EDA cannot cancel a running playbook, so that story does not apply to it.
        raise StackError(
            "the demo tells the AAP-direct story (cancel, then deprovision); use --provider aap"
            " (`cloudkit up --provider eda` runs the EDA stack)"
        )
    demo_dir = state_dir / "demo"
    await asyncio.to_thread(shutil.rmtree, demo_dir, True)
    await asyncio.to_thread(_log_to_file, demo_dir / "logs" / "demo.log")
    with console.status(f"starting the local stack in {demo_dir} ..."):
        handle = await start_stack(
            provider=provider, state_dir=demo_dir, vm_boot_seconds=VM_BOOT_SECONDS
        )
    try:
        if not handle.operator_running:
            raise StackError("the operator (cloudkit.operator) is not available")
        console.print(f"stack up: API server {handle.apiserver_url}, logs in {demo_dir / 'logs'}")
        checks = await _drive(handle, console)
    finally:
        with console.status("stopping the stack ..."):
            await handle.stop()
    summary = Table(title="demo outcome", title_justify="left")
    summary.add_column("check")
    summary.add_column("result")
    summary.add_column("seen")
    for check in checks:
        mark = Text("pass", style="green") if check.ok else Text("FAIL", style="bold red")
        summary.add_row(check.name, mark, check.detail)
    console.print(summary)
    return 0 if all(check.ok for check in checks) else 1


def _log_to_file(path: Path) -> None:
    """Our own log lines go to a file: on the terminal they would tear the live table."""
    private_dir(path.parent)
    handler = logging.StreamHandler(open_private_log(path))  # 0600, as all stack state
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def run(*, provider: str, state_dir: Path) -> None:
    console = Console(highlight=False)
    try:
        code = asyncio.run(_demo(provider, state_dir, console))
    except StackError as error:
        console.print(Text(f"demo failed: {error}", style="bold red"))
        code = 1
    except KeyboardInterrupt:
        code = 130
    if code:
        raise SystemExit(code)
