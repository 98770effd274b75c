"""What the fulfillment path adds to a lifecycle: order → RUNNING seen by the tenant, delete →
record gone, against the resource's own cycle, at N orders placed at once.

One local stack (AAP direct, simulated jobs: the playbook is not the subject here; the VM
simulator boots in `--vm-boot-seconds`). A tenant orders N compute instances through the API at
once, waits until every order is RUNNING, then deletes them all and waits until every record is
gone. Two watches stamp what happens (receipt times, one clock): the tenant's event stream
(`/api/events/v1/events`: the record's state, its DELETED event) and a watch of the
ComputeInstances (the instance created by the controller, Ready, its deletion, gone). Per order:

  path     = (RUNNING seen by the tenant − order created) + (record gone − delete requested)
  resource = (Ready − instance created) + (instance gone − instance deletion started)
  extra    = path − resource: the controller placing the order and deleting the instance, the
             operator's feedback carrying the status back, the record archived after the
             instance is gone

Prints one JSON document: per N, p50 / p99 / max of `extra_s` and of its four parts
(`create_to_instance_s`, `ready_to_running_s`, `delete_to_instance_deleting_s`,
`gone_to_record_gone_s`), p50 of `path_s` and `resource_s`, and orders that failed (named on
stderr, kept out of every figure). Goal: extra ≤ 1 s p99 at N = 10.

    .venv/bin/python benchmarks/orders.py [--sizes 1,10,50] [--vm-boot-seconds 1]
        [--job-seconds 1] [--timeout 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudkit.api import names
from cloudkit.fulfillment.client import FulfillmentClient
from cloudkit.local.issuer.tokens import mint
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.fulfillment import FulfillmentEndpoint
from cloudkit.local.stack.kube import KubeClient, WatchExpired, resource_path

RUNNING = "COMPUTE_INSTANCE_STATE_RUNNING"
DELETED = "EVENT_TYPE_OBJECT_DELETED"
PARTS = (
    "create_to_instance_s",
    "ready_to_running_s",
    "delete_to_instance_deleting_s",
    "gone_to_record_gone_s",
)


@dataclass
class Stamps:
    """Monotonic receipt times of one order's milestones."""

    created: float | None = None
    instance: float | None = None
    ready: float | None = None
    running: float | None = None
    delete: float | None = None
    instance_deleting: float | None = None
    instance_gone: float | None = None
    record_gone: float | None = None

    def figures(self) -> dict[str, float] | None:
        """The order's figures; None if a milestone is missing (the order failed)."""
        values = vars(self)
        if any(v is None for v in values.values()):
            return None
        s = {k: float(v) for k, v in values.items()}
        parts = {
            "create_to_instance_s": s["instance"] - s["created"],
            "ready_to_running_s": s["running"] - s["ready"],
            "delete_to_instance_deleting_s": s["instance_deleting"] - s["delete"],
            "gone_to_record_gone_s": s["record_gone"] - s["instance_gone"],
        }
        path = (s["running"] - s["created"]) + (s["record_gone"] - s["delete"])
        resource = (s["ready"] - s["instance"]) + (s["instance_gone"] - s["instance_deleting"])
        return {**parts, "path_s": path, "resource_s": resource, "extra_s": path - resource}


@dataclass
class Round:
    stamps: dict[str, Stamps] = field(default_factory=dict)
    """By order id."""

    def of(self, order_id: str) -> Stamps:
        return self.stamps.setdefault(order_id, Stamps())


def _first(current: float | None) -> float:
    return current if current is not None else time.monotonic()


async def follow_records(api: FulfillmentClient, rnd: Round, subscribed: asyncio.Event) -> None:
    """The tenant's event stream: RUNNING seen, record gone."""
    async with api.watch() as events:
        subscribed.set()
        async for event in events:
            record = event.get("compute_instance") or {}
            stamps = rnd.of(str(record.get("id")))
            if event.get("type") == DELETED:
                stamps.record_gone = _first(stamps.record_gone)
            elif (record.get("status") or {}).get("state") == RUNNING:
                stamps.running = _first(stamps.running)


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
    labels = obj["metadata"].get("labels") or {}
    if names.INSTANCE_UUID_LABEL not in labels:
        return
    stamps = rnd.of(str(labels[names.INSTANCE_UUID_LABEL]))
    stamps.instance = _first(stamps.instance)
    if (obj.get("status") or {}).get("phase") == "Ready":
        stamps.ready = _first(stamps.ready)
    if obj["metadata"].get("deletionTimestamp"):
        stamps.instance_deleting = _first(stamps.instance_deleting)
    if kind == "DELETED":
        stamps.instance_gone = _first(stamps.instance_gone)


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
                began = time.monotonic()
                body = {"metadata": {"name": f"bench-{index}"}, "spec": {"template": "bench"}}
                created = await api.create(body)
                rnd.of(str(created["id"])).created = began
                return str(created["id"])

            ids = await asyncio.gather(*(order(i) for i in range(n)))
            await until(lambda: all(rnd.of(i).running for i in ids), wait_s)

            async def delete(order_id: str) -> None:
                rnd.of(order_id).delete = time.monotonic()
                await api.delete(order_id)

            await asyncio.gather(*(delete(i) for i in ids))
            await until(lambda: all(rnd.of(i).record_gone for i in ids), wait_s)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    return rnd


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def summarize(n: int, rnd: Round) -> dict[str, Any]:
    figures, failed = [], []
    for order_id, stamps in rnd.stamps.items():
        found = stamps.figures()
        if found is None:
            missing = [k for k, v in vars(stamps).items() if v is None]
            print(f"FAILED order {order_id} (N={n}): no {', '.join(missing)}", file=sys.stderr)
            failed.append(order_id)
        else:
            figures.append(found)
    result: dict[str, Any] = {"n": n, "completed": len(figures), "failed": len(failed)}
    if figures:
        for key in ("extra_s", *PARTS):
            values = [f[key] for f in figures]
            result[key] = {
                "p50": percentile(values, 0.5),
                "p99": percentile(values, 0.99),
                "max": round(max(values), 3),
            }
        for key in ("path_s", "resource_s"):
            result[f"{key}_p50"] = round(statistics.median(f[key] for f in figures), 3)
    return result


async def run(sizes: list[int], boot: float, job_s: float, wait_s: float) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="ck-bench-orders-") as tmp:
        stack = await start_stack(
            provider="aap",
            state_dir=Path(tmp),
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
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = asyncio.run(run(sizes, args.vm_boot_seconds, args.job_seconds, args.timeout))
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
