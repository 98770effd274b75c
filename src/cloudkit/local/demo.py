"""`cloudkit demo`: the local stack, three orders, one deleted mid-provisioning, a verdict.

It starts the stack in DIR/demo (wiped first) and orders three compute instances through the
fulfillment API as the tenant `demo` (the fulfillment controller turns each order into a
ComputeInstance, the operator provisions it and writes its status back to the order). A live
table shows each order (id, tenant, state, IP) beside its resource and jobs; the demo deletes
one order while its provision job runs, and waits for the outcome. The checks read both views:
the cluster's (two Ready, the third gone with its provision job Canceled, exactly one
deprovision job, no VM left behind) and the tenant's (two orders RUNNING with their VM's IP
address, the third answering 404). Every instance version is recorded from a watch, so the
checks see each state the operator wrote, not a sample. Exit code 0 only if every check passes.
With `--faults SEED` the stack's links fail by the seed's plan meanwhile (the same checks
must pass) and the demo ends with what each link suffered.
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
from cloudkit.fulfillment.client import FulfillmentClient, NotFound
from cloudkit.local.issuer.tokens import mint
from cloudkit.local.private import open_private_log, private_dir
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackError, StackHandle, start_stack
from cloudkit.local.stack.fault_links import FaultedLinks, FaultSettings
from cloudkit.local.stack.fulfillment import FulfillmentEndpoint
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
TENANT = "demo"
VM_BOOT_SECONDS = 5.0
DEADLINE_S = 300.0
"""A cap, not a pace: the demo ends as soon as both views show the outcome (well under a
minute on a quiet machine; over two on two cores shared with heavy builds)."""
ORDERS_POLL_S = 0.5
RUNNING = "COMPUTE_INSTANCE_STATE_RUNNING"

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
ALL_VMS = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)


def order_body(name: str, cores: int, memory_gib: int) -> dict[str, Any]:
    """A tenant's order, as `cloudkit create computeinstance` sends it."""
    return {
        "metadata": {"name": name},
        "spec": {
            "template": "ocp_virt_vm",
            "template_parameters": {"cores": cores, "memory_gib": memory_gib},
            "image": {"source_type": "registry", "source_ref": "quay.io/containerdisks/fedora:41"},
            "boot_disk": {"size_gib": 20},
            "run_strategy": "Always",
        },
    }


@dataclass
class Observed:
    """Everything seen of the orders, their instances and VMs, by order name; `history`
    holds every instance version."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The tenant's view: each order as the API answers it."""
    orders_gone: set[str] = field(default_factory=set)
    """Orders the API answers 404 for (archived)."""
    order_names: dict[str, str] = field(default_factory=dict)
    """Order id → order name; the controller labels each instance with its order's id."""
    instance_names: dict[str, str] = field(default_factory=dict)
    """Instance name (generated) → order name; VMs are labelled with the instance's name."""

    def name_of(self, obj: dict[str, Any]) -> str:
        """The order an instance belongs to (its own name when no order is known)."""
        meta = obj["metadata"]
        order_id = (meta.get("labels") or {}).get(names.INSTANCE_UUID_LABEL, "")
        name = self.order_names.get(order_id, str(meta["name"]))
        self.instance_names[str(meta["name"])] = name
        return name

    def record(self, kind: str, obj: dict[str, Any]) -> None:
        name = self.name_of(obj)
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


async def _read_vms(kube: KubeClient, seen: Observed) -> None:
    listing = await kube.list_objects(ALL_VMS)
    seen.vms = {
        seen.instance_names.get(label, label): vm
        for vm in listing.get("items") or []
        if (label := (vm["metadata"].get("labels") or {}).get(names.VM_INSTANCE_LABEL, ""))
    }


async def _poll_vms(kube: KubeClient, seen: Observed) -> None:
    while True:
        await _read_vms(kube, seen)
        await asyncio.sleep(1.0)


async def _read_orders(api: FulfillmentClient, seen: Observed) -> None:
    """The tenant's view of its orders; one it had that the API no longer has is gone."""
    for order_id, name in list(seen.order_names.items()):
        try:
            seen.orders[name] = await api.get(order_id)
        except NotFound:
            seen.orders.pop(name, None)
            seen.orders_gone.add(name)


async def _poll_orders(api: FulfillmentClient, seen: Observed) -> None:
    while True:
        await _read_orders(api, seen)
        await asyncio.sleep(ORDERS_POLL_S)


def _table(seen: Observed, elapsed: float, note: str) -> Table:
    """The tenant's view (order, tenant, state and IP) beside the cluster's (instance, phase,
    jobs, VM); two lines a row, so it fits an 80-column terminal."""
    table = Table(title=f"cloudkit demo  {elapsed:5.1f}s  {note}", title_justify="left")
    for column in ("order", "tenant", "state", "instance", "jobs", "VM"):
        table.add_column(column, no_wrap=True)
    for name in (*KEEP, DOOMED):
        order, tenant, state = _order_cells(seen, name)
        obj = seen.instances.get(name)
        if obj is None and name in seen.gone:
            deleted = Text("deleted", style="dim")
            table.add_row(order, tenant, state, deleted, "", _vm_cell(seen, name))
            continue
        phase = ((obj or {}).get("status") or {}).get("phase") or "-"
        style = {"Ready": "green", "Failed": "red", "Deleting": "yellow"}.get(phase, "")
        instance = Text(str(((obj or {}).get("metadata") or {}).get("name") or "-") + "\n")
        instance.append(phase, style=style)
        jobs = _job_cell(_job(obj, "provisionJob"))
        if _job(obj, "deprovisionJob"):
            jobs += "\n" + _job_cell(_job(obj, "deprovisionJob"))
        table.add_row(order, tenant, state, instance, jobs, _vm_cell(seen, name))
    return table


def _order_cells(seen: Observed, name: str) -> tuple[str, str, Text]:
    order = seen.orders.get(name)
    order_id = next((i for i, n in seen.order_names.items() if n == name), "")
    head = f"{name}\n{order_id[:8]}"
    if order is None:
        gone = Text("gone (404)", style="dim") if name in seen.orders_gone else Text("-")
        return head, TENANT if order_id else "", gone
    status = order.get("status") or {}
    state = str(status.get("state") or "").removeprefix("COMPUTE_INSTANCE_STATE_") or "-"
    style = {"RUNNING": "green", "FAILED": "red", "DELETING": "yellow"}.get(state, "")
    tenant = str((order.get("metadata") or {}).get("tenant") or "")
    shown = Text(state, style=style)
    shown.append(f"\n{status.get('internal_ip_address') or ''}")
    return head, tenant, shown


def _job_cell(job: dict[str, Any], *, message: bool = False) -> str:
    if not job:
        return "-"
    text = f"#{job.get('id') or '?'} {job.get('state', '')}"
    said = job.get("message") if message else None
    return f"{text} ({said})" if said else text


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
            _job_cell(last_provision, message=True),
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
    return checks + tenant_verdict(seen)


def tenant_verdict(seen: Observed) -> list[Check]:
    """The tenant's view agrees with the cluster's: each kept order RUNNING with its VM's IP
    address (the instance's), the deleted one answering 404."""
    checks = []
    for name in KEEP:
        order = (seen.orders.get(name) or {}).get("status") or {}
        instance = (seen.instances.get(name) or {}).get("status") or {}
        state, ip = order.get("state"), order.get("internal_ip_address")
        checks.append(
            Check(
                f"{name}: order RUNNING with the instance's IP (tenant's view)",
                state == RUNNING and bool(ip) and ip == instance.get("ipAddress"),
                f"order {state} {ip!r}; instance {instance.get('ipAddress')!r}",
            )
        )
    checks.append(
        Check(
            f"{DOOMED}: order gone, 404 (tenant's view)",
            DOOMED in seen.orders_gone and DOOMED not in seen.orders,
            "",
        )
    )
    return checks


async def _drive(handle: StackHandle, api: FulfillmentClient, console: Console) -> list[Check]:
    seen = Observed()
    async with KubeClient.from_kubeconfig(handle.kubeconfig) as kube:
        for name, cores, memory in ((KEEP[0], 2, 4), (KEEP[1], 4, 8), (DOOMED, 1, 2)):
            created = await api.create(order_body(name, cores, memory))
            seen.order_names[str(created["id"])] = name
        followers = [
            asyncio.create_task(_follow_instances(kube, seen)),
            asyncio.create_task(_poll_vms(kube, seen)),
            asyncio.create_task(_poll_orders(api, seen)),
        ]
        try:
            await _watch_progress(api, seen, handle, console)
        finally:
            for task in followers:
                task.cancel()
            for task in followers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # One last authoritative read of both views for the checks.
        await _read_vms(kube, seen)
        await _read_orders(api, seen)
    return verdict(seen)


async def _watch_progress(
    api: FulfillmentClient, seen: Observed, handle: StackHandle, console: Console
) -> None:
    started = time.monotonic()
    deleted_at: float | None = None
    note = f"ordered three instances as tenant {TENANT}"
    doomed_id = next(i for i, n in seen.order_names.items() if n == DOOMED)
    with Live(_table(seen, 0, note), console=console, refresh_per_second=4) as live:
        while True:
            elapsed = time.monotonic() - started
            doomed = seen.instances.get(DOOMED)
            if deleted_at is None and _job(doomed, "provisionJob").get("state") == "Running":
                await api.delete(doomed_id)
                deleted_at = elapsed
                note = f"deleted order {DOOMED} while its provision job runs"
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
        ((seen.instances.get(n) or {}).get("status") or {}).get("phase") == "Ready"
        and ((seen.orders.get(n) or {}).get("status") or {}).get("state") == RUNNING
        for n in KEEP
    )
    doomed_gone = DOOMED in seen.gone and DOOMED in seen.orders_gone
    return ready and doomed_gone and DOOMED not in seen.vms


async def _demo(
    provider: str, state_dir: Path, console: Console, faults: FaultSettings | None = None
) -> int:
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
            provider=provider, state_dir=demo_dir, vm_boot_seconds=VM_BOOT_SECONDS, faults=faults
        )
    try:
        if not handle.operator_running:
            raise StackError("the operator (cloudkit.operator) is not available")
        console.print(
            f"stack up: fulfillment API {handle.fulfillment_url}, API server "
            f"{handle.apiserver_url}, logs in {demo_dir / 'logs'}"
        )
        async with _tenant_client(demo_dir) as api:
            checks = await _drive(handle, api, console)
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
    if handle.faults is not None:
        console.print(_faults_table(handle.faults))
    return 0 if all(check.ok for check in checks) else 1


def _faults_table(faults: FaultedLinks) -> Table:
    """What each link suffered during the demo (DIR/demo/faults.json has the plans)."""
    table = Table(title=f"faults (seed {faults.settings.seed})", title_justify="left")
    for column in ("link", "faults applied", "connections faulted"):
        table.add_column(column)
    for link, entry in faults.summary()["links"].items():
        table.add_row(link, str(entry["faults_applied"]), str(entry["connections_faulted"]))
    return table


def _tenant_client(state_dir: Path) -> FulfillmentClient:
    """The API as the tenant `demo`, with tokens of the stack's issuer (as `cloudkit login
    --tenant demo` would get them)."""
    endpoint = FulfillmentEndpoint.read(state_dir)
    issuer = Path(endpoint.issuer_dir)
    return FulfillmentClient(
        endpoint.address,
        lambda: mint(issuer, tenant=TENANT, ttl_s=3600),
        ca_file=Path(endpoint.ca_file),
    )


def _log_to_file(path: Path) -> None:
    """Our own log lines go to a file: on the terminal they would tear the live table."""
    private_dir(path.parent)
    handler = logging.StreamHandler(open_private_log(path))  # 0600, as all stack state
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def run(*, provider: str, state_dir: Path, faults: FaultSettings | None = None) -> None:
    console = Console(highlight=False)
    try:
        code = asyncio.run(_demo(provider, state_dir, console, faults))
    except StackError as error:
        console.print(Text(f"demo failed: {error}", style="bold red"))
        code = 1
    except KeyboardInterrupt:
        code = 130
    if code:
        raise SystemExit(code)
