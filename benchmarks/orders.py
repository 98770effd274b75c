"""What the fulfillment path adds to a lifecycle: order → RUNNING seen by the tenant, delete →
record gone, against the resource's own cycle, at N orders placed at once; and where, hop by hop.

One local stack (AAP direct, simulated jobs: the playbook is not the subject here; the VM
simulator boots in `--vm-boot-seconds`). A tenant orders N compute instances through the API at
once, waits until every order is RUNNING, then deletes them all and waits until every record is
gone. Milestones are wall-clock times on one machine: the tenant's event stream
(`/api/events/v1/events`: STARTING, RUNNING, the DELETED event), a watch of the ComputeInstances
(created, Ready, deletion started, deprovisioned: only the feedback's finalizer left),
and the log lines the controller and the operator write as they act (the controller's first
write of the record, its creation and deletion of the instance, its finalizer removed; the
operator's feedback writing RUNNING, then the final state). Per order:

  path     = (RUNNING seen by the tenant − order sent) + (record gone − delete sent)
  resource = (Ready − instance created) + (deprovisioned − instance deletion started): the
             cycle the resource would have had if a person had applied and deleted it
  extra    = path − resource: the controller placing the order and deleting the instance, the
             operator's feedback carrying the status back and writing the final state before
             its finalizer goes, the record archived after the instance is gone

and each hop between consecutive milestones (`HOPS`; a log line is written when the writer's
answer came back, so the hop from it to what the tenant saw may be slightly negative: the
tenant heard of the commit first), whose sum over the create hops before
`instance` and after `ready`, and over the delete hops before `instance_deleting` and after
`deprovisioned`, is `extra`.

Prints one JSON document: per N, p50 / p99 / max of `extra_s`, of its four parts
(`create_to_instance_s`, `ready_to_running_s`, `delete_to_instance_deleting_s`,
`deprovisioned_to_record_gone_s`) and of every hop (`hops`), p50 of `path_s` and `resource_s`,
the load average, and orders that failed (named on stderr, kept out of every figure). Goal:
extra ≤ 1 s p99 at N = 10.

    .venv/bin/python benchmarks/orders.py [--sizes 1,10,50] [--vm-boot-seconds 1]
        [--job-seconds 1] [--timeout 600] [--keep-state DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cloudkit.api import names
from cloudkit.fulfillment.client import FulfillmentClient
from cloudkit.local.issuer.tokens import mint
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.fulfillment import FulfillmentEndpoint
from cloudkit.local.stack.kube import KubeClient, WatchExpired, resource_path

RUNNING = "COMPUTE_INSTANCE_STATE_RUNNING"
STARTING = "COMPUTE_INSTANCE_STATE_STARTING"
DELETED = "EVENT_TYPE_OBJECT_DELETED"
CREATE_MILESTONES = ("sent", "accepted", "placed", "instance", "ready", "fed_back", "running")
"""An order's way to RUNNING: sent, POST answered, the controller's first write of the record
(finalizer, STARTING, hub), the instance created, Ready, the feedback's write of RUNNING
answered, RUNNING on the tenant's stream."""
DELETE_MILESTONES = (
    "delete",
    "delete_accepted",
    "instance_deleting",
    "deprovisioned",
    "released",
    "record_released",
    "record_gone",
)
"""A deletion's way: sent, DELETE answered, the instance's deletion started (the controller
deleted it), deprovisioned (only the feedback's finalizer left), the feedback's final state
written and its finalizer removed (the operator's log: the instance is gone with it), the
controller's finalizer removed from the record, the record's DELETED event on the tenant's
stream."""
HOPS = tuple(
    f"{a}_to_{b}"
    for chain in (CREATE_MILESTONES, DELETE_MILESTONES)
    for a, b in itertools.pairwise(chain)
)
PARTS = (
    "create_to_instance_s",
    "ready_to_running_s",
    "delete_to_instance_deleting_s",
    "deprovisioned_to_record_gone_s",
)
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"
LOG_LINES = (
    # (log file, milestone, the line's pattern with the record id as group 1)
    ("controller", "placed", re.compile(r"record (\S+): status " + STARTING)),
    ("controller", "record_released", re.compile(r"record (\S+): finalizer removed")),
    ("operator", "fed_back", re.compile(r": record (\S+): state RUNNING")),
    ("operator", "released", re.compile(r": final state written to record (\S+);")),
)


@dataclass
class Stamps:
    """Wall-clock times (one machine's clock) of one order's milestones."""

    times: dict[str, float] = field(default_factory=dict)

    def first(self, milestone: str, at: float | None = None) -> None:
        self.times.setdefault(milestone, time.time() if at is None else at)

    def missing(self) -> list[str]:
        return [m for m in (*CREATE_MILESTONES, *DELETE_MILESTONES) if m not in self.times]

    def figures(self) -> dict[str, float] | None:
        """The order's figures; None if a milestone is missing (the order failed)."""
        if self.missing():
            return None
        t = self.times
        parts = {
            "create_to_instance_s": t["instance"] - t["sent"],
            "ready_to_running_s": t["running"] - t["ready"],
            "delete_to_instance_deleting_s": t["instance_deleting"] - t["delete"],
            "deprovisioned_to_record_gone_s": t["record_gone"] - t["deprovisioned"],
        }
        hops = {}
        for chain in (CREATE_MILESTONES, DELETE_MILESTONES):
            for a, b in itertools.pairwise(chain):
                hops[f"{a}_to_{b}"] = t[b] - t[a]
        path = (t["running"] - t["sent"]) + (t["record_gone"] - t["delete"])
        resource = (t["ready"] - t["instance"]) + (t["deprovisioned"] - t["instance_deleting"])
        return {
            **parts,
            **hops,
            "path_s": path,
            "resource_s": resource,
            "extra_s": path - resource,
        }


@dataclass
class Round:
    stamps: dict[str, Stamps] = field(default_factory=dict)
    """By order id."""

    def of(self, order_id: str) -> Stamps:
        return self.stamps.setdefault(order_id, Stamps())


async def follow_records(api: FulfillmentClient, rnd: Round, subscribed: asyncio.Event) -> None:
    """The tenant's event stream: RUNNING seen, record gone."""
    async with api.watch() as events:
        subscribed.set()
        async for event in events:
            record = event.get("compute_instance") or {}
            stamps = rnd.of(str(record.get("id")))
            if event.get("type") == DELETED:
                stamps.first("record_gone")
            elif (record.get("status") or {}).get("state") == RUNNING:
                stamps.first("running")


async def follow_instances(
    kube: KubeClient, namespace: str, rnd: Round, subscribed: asyncio.Event
) -> None:
    """The ComputeInstances: created, Ready, deletion started, gone (by their order's id)."""
    path = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=namespace)
    while True:
        listing = await kube.list_objects(path)
        rv = str(listing["metadata"].get("resourceVersion", ""))
        subscribed.set()
        with contextlib.suppress(WatchExpired):
            while True:
                async for kind, obj in kube.watch(path, rv, timeoutSeconds="300"):
                    rv = str(obj["metadata"].get("resourceVersion") or rv)
                    _stamp_instance(rnd, kind, obj)


def _stamp_instance(rnd: Round, kind: str, obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    labels = metadata.get("labels") or {}
    if names.INSTANCE_UUID_LABEL not in labels:
        return
    stamps = rnd.of(str(labels[names.INSTANCE_UUID_LABEL]))
    stamps.first("instance")
    if (obj.get("status") or {}).get("phase") == "Ready":
        stamps.first("ready")
    if metadata.get("deletionTimestamp"):
        stamps.first("instance_deleting")
        if set(metadata.get("finalizers") or []) <= {names.FEEDBACK_FINALIZER}:
            stamps.first("deprovisioned")


async def stamp_from_logs(rnd: Round, logs: Path, within_s: float = 10.0) -> None:
    """The milestones only the controller's and the operator's log lines show; a writer logs
    after its answer came back, which may be after the tenant heard of the change: its lines
    are read again until every order has them (or `within_s` passed)."""
    deadline = time.monotonic() + within_s
    while True:
        _stamp_log_lines(rnd, logs)
        if all(not s.missing() for s in rnd.stamps.values()) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


def _stamp_log_lines(rnd: Round, logs: Path) -> None:
    for process, milestone, pattern in LOG_LINES:
        log_file = logs / f"{process}.log"
        if not log_file.is_file():
            continue
        for line in log_file.read_text(errors="replace").splitlines():
            found = pattern.search(line)
            if found is None or found.group(1) not in rnd.stamps:
                continue
            try:
                # asctime, this machine's local time: the same clock as time.time().
                at = datetime.strptime(line[:23], LOG_TIME).timestamp()
            except ValueError:
                continue
            rnd.stamps[found.group(1)].first(milestone, at)


async def until(predicate: Any, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_round(stack: StackHandle, api: FulfillmentClient, n: int, wait_s: float) -> Round:
    rnd = Round()
    streams = (asyncio.Event(), asyncio.Event())
    async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
        followers = [
            asyncio.create_task(follow_records(api, rnd, streams[0])),
            asyncio.create_task(follow_instances(kube, stack.instance_namespace, rnd, streams[1])),
        ]
        try:
            for stream in streams:
                await asyncio.wait_for(stream.wait(), 60)

            async def order(index: int) -> str:
                began = time.time()
                body = {"metadata": {"name": f"bench-{index}"}, "spec": {"template": "bench"}}
                created = await api.create(body)
                stamps = rnd.of(str(created["id"]))
                stamps.first("sent", began)
                stamps.first("accepted")
                return str(created["id"])

            ids = await asyncio.gather(*(order(i) for i in range(n)))
            await until(lambda: all("running" in rnd.of(i).times for i in ids), wait_s)

            async def delete(order_id: str) -> None:
                rnd.of(order_id).first("delete")
                await api.delete(order_id)
                rnd.of(order_id).first("delete_accepted")

            await asyncio.gather(*(delete(i) for i in ids))
            await until(lambda: all("record_gone" in rnd.of(i).times for i in ids), wait_s)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    return rnd


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": round(max(values), 3),
    }


def summarize(n: int, rnd: Round) -> dict[str, Any]:
    figures, failed = [], []
    for order_id, stamps in rnd.stamps.items():
        found = stamps.figures()
        if found is None:
            missing = stamps.missing()
            print(f"FAILED order {order_id} (N={n}): no {', '.join(missing)}", file=sys.stderr)
            failed.append(order_id)
        else:
            figures.append(found)
    result: dict[str, Any] = {"n": n, "completed": len(figures), "failed": len(failed)}
    if figures:
        for key in ("extra_s", *PARTS):
            result[key] = spread([f[key] for f in figures])
        result["hops"] = {key: spread([f[key] for f in figures]) for key in HOPS}
        for key in ("path_s", "resource_s"):
            result[f"{key}_p50"] = round(statistics.median(f[key] for f in figures), 3)
    return result


async def run(
    sizes: list[int], boot: float, job_s: float, wait_s: float, keep: Path | None = None
) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="ck-bench-orders-") as tmp:
        stack = await start_stack(
            provider="aap",
            state_dir=keep or Path(tmp),
            vm_boot_seconds=boot,
            simulated_jobs={"run_seconds": job_s},
        )
        try:
            endpoint = FulfillmentEndpoint.read(stack.state_dir)
            issuer = Path(endpoint.issuer_dir)
            for n in sizes:
                tenant = f"bench-{n}"
                async with FulfillmentClient(
                    endpoint.address,
                    lambda tenant=tenant: mint(issuer, tenant=tenant),  # type: ignore[misc]
                    ca_file=Path(endpoint.ca_file),
                ) as api:
                    began = time.monotonic()
                    rnd = await run_round(stack, api, n, wait_s)
                    await stamp_from_logs(rnd, stack.state_dir / "logs")
                    result = summarize(n, rnd)
                    result["wall_s"] = round(time.monotonic() - began, 1)
                    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
                    print(json.dumps(result), file=sys.stderr)
                    results.append(result)
        finally:
            await stack.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--vm-boot-seconds", type=float, default=1.0)
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="per wait, seconds")
    parser.add_argument(
        "--keep-state", type=Path, default=None, help="the stack's state dir, kept (its logs)"
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = asyncio.run(
        run(sizes, args.vm_boot_seconds, args.job_seconds, args.timeout, args.keep_state)
    )
    at_10 = next((r for r in results if r["n"] == 10 and "extra_s" in r), None)
    print(
        json.dumps(
            {
                "benchmark": "orders",
                "provider": "aap",
                "simulated_jobs_s": args.job_seconds,
                "vm_boot_seconds": args.vm_boot_seconds,
                "extra_p99_s_at_10": at_10["extra_s"]["p99"] if at_10 else None,
                "goals": {"extra_p99_le_1s_at_10": bool(at_10 and at_10["extra_s"]["p99"] <= 1)},
                "sizes": results,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
