"""Scale benchmark: capacity as a ratio to the machine, a sustained run, and bursts of N.

For each N (default 100, 300, 1000) a fresh local stack (AAP direct) whose automation service
runs simulated job templates (`kind: simulated`: AWX's states and the playbooks' Kubernetes
effects, no Ansible), so the figures are the operator's and the API server's, not Ansible's.
N ComputeInstances are created in one burst, the run waits until every one is Ready, deletes
them all in one burst and waits until every one is gone. Per N:

  burst_capacity_ratio            the burst's drain rate (N ÷ first create → last gone) ÷ the
                                  machine's limit for this workload (cores ÷ CPU seconds per
                                  lifecycle of the operator, API server, automation service and
                                  VM simulator over the same window, from /proc): machine.py
  burst_other_cpu_share           what the rest of the machine used of the cores meanwhile
                                  (/proc/stat less the stack; the benchmark's load included),
                                  and burst_capacity_ratio_of_free_cores the ratio to the rest
  operator_cpu_ms_per_lifecycle   operator utime+stime over the run (/proc) ÷ N
  api_writes/reads_per_lifecycle  the operator's Kubernetes requests by verb (its metrics) ÷ N;
                                  writes are POST, PUT, PATCH, DELETE; reads GET (lists too)
  api_requests_by_operation       the same requests by verb and resource, from the API server's
                                  audit log (the operator runs under its ServiceAccount), ÷ N
  overhead_p50/p99_ratio          per instance (cycle − its two jobs) ÷ cycle, where cycle =
                                  (Ready − create sent) + (gone − delete sent); in a burst on a
                                  saturated machine this is queueing for the cores
  last_create_to_last_ready_s     the burst's tail
  operator/apiserver_peak_rss_mb  VmHWM of each process
  watch_p50/p99_ms                delivery of this run's own writes (creates, deletes) to a
                                  watcher on the instances: event arrival − request sent
  sentinel_delete_s_max           five instances Ready before the burst are deleted right after
                                  its creates are sent: their slowest deletion, beside their
                                  deprovision jobs' own time (fairness: the burst must not
                                  starve them); per-lifecycle figures count them in (N + 5)

After the largest N, on the same stack: the sustained run. Instances arrive evenly at
--sustained-share (0.7) of that burst's drain rate for --sustained-seconds (300); each is
deleted when the watcher sees it Ready. Its overhead and watch delivery are the same measures
as the burst's, now below saturation (--sustained-rate R: R arrivals a second instead, to
compare two trees at the same rate). Its `tail` says where the cycles went: per hop (create
sent → provision job created, the job created → finished, job finished → Ready seen by the
watcher, and the same three for the deletion; job times are the automation service's own
timestamps) the p50/p99/max in ms, and the instances at or above the overhead p99 with their
hops and when in the run they were created. What each process was doing then:
benchmarks/loop_stalls (its long callbacks and collections, on request).

Prints one JSON document; the headline keys are at the largest N: capacity_ratio,
sustained_overhead_p99, sustained_watch_p99_ms, operator_cpu_ms_per_lifecycle,
api_writes_per_lifecycle, burst_overhead_p99_ratio, max_n.

    .venv/bin/python benchmarks/scale.py [--sizes 100,300,1000] [--no-notifications]
        [--run-seconds 2] [--vm-boot-seconds 1] [--timeout 900] [--max-launches N]
        [--sustained-seconds 300] [--sustained-share 0.7 | --sustained-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lifecycle  # the sibling benchmark: the automation's job list and the instance shape
from cloudkit.api import names
from cloudkit.bench.baseline import job_records
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.supervisor import INSTANCE_NAMESPACE
from machine import SIMULATOR, STACK_PROCESSES, StackCpu, Window, capacity, cores

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
BURST_CONCURRENCY = 16  # concurrent create (and delete) requests of the burst
SENTINELS = 5
"""Instances Ready before the burst, deleted as soon as its creates are sent: how long their
deletion takes behind N queued creates shows whether the burst starves the rest."""
INSTANCES = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)


@dataclass
class Run:
    """What the watcher saw and when this run wrote (time.monotonic())."""

    created: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    watch_delays: list[float] = field(default_factory=list)
    seen_added: set[str] = field(default_factory=set)
    seen_deleting: set[str] = field(default_factory=set)
    sentinels: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    burst: Window | None = None
    """CPU and wall time from the burst's first create to its last instance gone."""
    wall: dict[tuple[str, str], float] = field(default_factory=dict)
    """time.time() of each mark, by (mark, name): the jobs' timestamps are wall-clock, and
    the wall clock may be stepped during a run (one offset taken at the start put a hop 5 s
    off once), so each hop compares two readings taken at its ends."""
    on_ready: Callable[[str], None] | None = None
    """Called once per instance when the watcher first sees it Ready (the sustained run
    deletes it then)."""

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj.get("metadata", {}).get("name", "")
        if name not in self.created:
            return
        if name not in self.seen_added:
            self.seen_added.add(name)
            self.watch_delays.append(now - self.created[name])
        if name in self.deleted and name not in self.seen_deleting:
            self.seen_deleting.add(name)
            self.watch_delays.append(now - self.deleted[name])
        if kind == "DELETED":
            self.gone.setdefault(name, now)
            self.wall.setdefault(("gone", name), time.time())
        elif (obj.get("status") or {}).get("phase") == "Ready" and name not in self.ready:
            self.ready[name] = now
            self.wall[("ready", name)] = time.time()
            if self.on_ready is not None:
                self.on_ready(name)
        self.changed.set()

    async def until(self, done: Any, within_s: float, what: str) -> None:
        deadline = time.monotonic() + within_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                continue


async def _watch(kube: KubeClient, run: Run, started: asyncio.Event) -> None:
    listing = await kube.list_objects(INSTANCES)
    rv = listing["metadata"]["resourceVersion"]
    while True:
        started.set()
        async for kind, obj in kube.watch(INSTANCES, rv, timeoutSeconds="300"):
            rv = obj.get("metadata", {}).get("resourceVersion", rv)
            if kind != "BOOKMARK":
                run.on_event(kind, obj)


async def _burst(names_: list[str], act: Any) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names_:
        queue.put_nowait(name)

    async def worker() -> None:
        while not queue.empty():
            await act(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(BURST_CONCURRENCY)))


async def _drive(kubeconfig: Path, n: int, within_s: float, cpu: StackCpu) -> Run:
    """Create the sentinels and wait for them; create N in a burst and delete the sentinels
    right after; wait for Ready, delete the N in a burst, wait until every one is gone."""
    run = Run()
    names_ = [f"scale-{n}-{i}" for i in range(n)]
    sentinels = [f"scale-{n}-sentinel-{i}" for i in range(SENTINELS)]
    run.sentinels.update(sentinels)
    async with (
        KubeClient.from_kubeconfig(kubeconfig) as kube,
        KubeClient.from_kubeconfig(kubeconfig) as watcher,
    ):
        started = asyncio.Event()
        watching = asyncio.create_task(_watch(watcher, run, started))
        await asyncio.wait_for(started.wait(), 120)

        async def create(name: str) -> None:
            run.created[name] = time.monotonic()
            run.wall[("created", name)] = time.time()
            await kube.create(INSTANCES, lifecycle._manifest(name, INSTANCE_NAMESPACE))

        async def delete(name: str) -> None:
            run.deleted[name] = time.monotonic()
            run.wall[("deleted", name)] = time.time()
            await kube.delete(f"{INSTANCES}/{name}")

        def all_(marks: dict[str, float], which: list[str]) -> bool:
            return all(name in marks for name in which)

        try:
            await _burst(sentinels, create)
            await run.until(lambda: all_(run.ready, sentinels), within_s, "the sentinels Ready")
            began, cpu_before = time.monotonic(), cpu.sample()
            await _burst(names_, create)
            await _burst(sentinels, delete)
            await run.until(lambda: all_(run.ready, names_), within_s, f"{n} instances Ready")
            await _burst(names_, delete)
            everything = names_ + sentinels
            await run.until(lambda: all_(run.gone, everything), within_s, "every instance gone")
            run.burst = Window(began, time.monotonic(), cpu_before, cpu.sample())
        finally:
            watching.cancel()
    return run


def _backend_durations(jobs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per instance name: its successful provision and deprovision jobs' seconds (created →
    finished); a job that did not succeed adds nothing (the lifecycle shows it elsewhere)."""
    out: dict[str, dict[str, float]] = {}
    for job in job_records(jobs):
        if job.status == "successful" and job.seconds is not None:
            out.setdefault(job.instance, {})[job.kind] = job.seconds
    return out


def in_thread(drive: Callable[[], Coroutine[Any, Any, Run]]) -> Run:
    """The load and the watcher get their own event loop: the stack's VM simulator runs in
    the main one, and would otherwise delay the watcher's reads (and inflate the watch delay)."""
    result: dict[str, Run | BaseException] = {}

    def target() -> None:
        try:
            result["run"] = asyncio.run(drive())
        except BaseException as error:
            traceback.print_exc()  # the thread's frames, before the error crosses over
            result["run"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    outcome = result["run"]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _requests_by_verb(stack: StackHandle) -> Counter[str]:
    # A generous timeout: on a saturated 2-core machine the operator may answer late.
    with urllib.request.urlopen(stack.metrics_url, timeout=60) as resp:
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("cloudkit_kubernetes_requests_total{"):
            verb = line.split('verb="', 1)[1].split('"', 1)[0]
            counts[verb] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def _audit_log(stack: StackHandle) -> Path:
    return stack.state_dir / "apiserver" / "audit.jsonl"


def _operations(lines: Iterable[str]) -> Counter[str]:
    """The operator's requests by verb and resource (its ServiceAccount's audit lines)."""
    counts: Counter[str] = Counter()
    for line in lines:
        entry = json.loads(line)
        if not str(entry.get("user", "")).startswith("system:serviceaccount:"):
            continue
        resource = entry.get("resource") or entry.get("path", "")
        if entry.get("subresource"):
            resource += "/" + entry["subresource"]
        counts[f"{entry['verb']} {resource}"] += 1
    return counts


def _pid(stack: StackHandle, child: str) -> int:
    return next(c.pid for c in stack.children if c.name == child)


def _stack_cpu(stack: StackHandle, simulator_tid: int) -> StackCpu:
    return StackCpu({part: _pid(stack, part) for part in STACK_PROCESSES}, simulator_tid)


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def _rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _per(counts: Counter[str], n: int) -> dict[str, float]:
    return {key: round(value / n, 2) for key, value in sorted(counts.items()) if value}


def _overheads(
    run: Run, backend: dict[str, dict[str, float]], names_: list[str]
) -> tuple[dict[str, float], dict[str, float], list[float]]:
    """Per instance: its cycle, its two jobs' seconds, and (cycle − jobs) ÷ cycle."""
    cycles = {x: (run.ready[x] - run.created[x]) + (run.gone[x] - run.deleted[x]) for x in names_}
    jobs = {x: sum(backend.get(x, {}).values()) for x in names_}
    return cycles, jobs, [(cycles[x] - jobs[x]) / cycles[x] for x in names_]


def measure(stack: StackHandle, n: int, timeout: float, cpu: StackCpu) -> dict[str, Any]:
    load_before = os.getloadavg()
    verbs_before = _requests_by_verb(stack)
    audit = _audit_log(stack)
    audit_offset = audit.stat().st_size if audit.exists() else 0
    cpu_before = cpu.sample()
    began = time.monotonic()
    run = in_thread(lambda: _drive(stack.kubeconfig, n, timeout, cpu))
    whole = Window(began, time.monotonic(), cpu_before, cpu.sample()).cpu_by_part()
    verbs = _requests_by_verb(stack) - verbs_before
    with audit.open() as log:
        log.seek(audit_offset)
        operations = _operations(log)
    backend = _backend_durations(lifecycle._jobs(stack))
    names_ = sorted(set(run.created) - run.sentinels)
    sentinel_deletes = [run.gone[x] - run.deleted[x] for x in sorted(run.sentinels)]
    sentinel_jobs = [backend.get(x, {}).get("deprovision", 0.0) for x in sorted(run.sentinels)]
    lifecycles = n + len(run.sentinels)
    cycles, jobs, ratios = _overheads(run, backend, names_)
    delays = run.watch_delays
    writes = sum(verbs[v] for v in WRITE_VERBS)
    assert run.burst is not None  # _drive returns only once every instance is gone
    return {
        "n": n,
        "wall_s": round(time.monotonic() - began, 1),
        "lifecycles_completed": sum(1 for x in names_ if x in run.ready and x in run.gone),
        "sentinels_completed": sum(1 for x in run.sentinels if x in run.ready and x in run.gone),
        "max_launches_in_flight": os.environ.get("CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT", "default"),
        "operator_cpu_ms_per_lifecycle": round(whole["operator"] * 1000 / lifecycles, 1),
        # Where else the machine's two cores went (the API server serves every request).
        "apiserver_cpu_ms_per_lifecycle": round(whole["apiserver"] * 1000 / lifecycles, 1),
        "automation_cpu_ms_per_lifecycle": round(whole["automation"] * 1000 / lifecycles, 1),
        "simulator_cpu_ms_per_lifecycle": round(whole[SIMULATOR] * 1000 / lifecycles, 1),
        # The burst's drain (first create → last gone; its N lifecycles, the sentinels'
        # deletions riding along) against what the machine's cores allow for this workload.
        **{f"burst_{key}": value for key, value in capacity(run.burst, n, cores()).items()},
        "api_writes_per_lifecycle": round(writes / lifecycles, 2),
        "api_reads_per_lifecycle": round(verbs["GET"] / lifecycles, 2),
        "api_requests_per_lifecycle_by_verb": _per(verbs, lifecycles),
        "api_requests_by_operation": _per(operations, lifecycles),
        # Burst figures: on a saturated machine the overhead is queueing for the cores.
        "overhead_p50_ratio": round(_quantile(ratios, 0.5), 4),
        "overhead_p99_ratio": round(_quantile(ratios, 0.99), 4),
        "cycle_s_p50": round(statistics.median(cycles.values()), 2),
        "provision_s_p50": round(
            statistics.median(run.ready[x] - run.created[x] for x in names_), 2
        ),
        "deprovision_s_p50": round(
            statistics.median(run.gone[x] - run.deleted[x] for x in names_), 2
        ),
        "jobs_s_p50": round(statistics.median(jobs.values()), 2),
        "last_create_to_last_ready_s": round(
            max(run.ready.values()) - max(run.created.values()), 2
        ),
        "operator_peak_rss_mb": _peak_rss_mb(_pid(stack, "operator")),
        "apiserver_peak_rss_mb": _peak_rss_mb(_pid(stack, "apiserver")),
        # Deleted right after the burst's creates were sent: their deletion against their
        # deprovision jobs' own time (a starved deletion would wait behind the burst).
        "sentinel_delete_s_max": round(max(sentinel_deletes), 2),
        "sentinel_deprovision_job_s_max": round(max(sentinel_jobs), 2),
        "watch_p50_ms": round(_quantile(delays, 0.5) * 1000, 1),
        "watch_p99_ms": round(_quantile(delays, 0.99) * 1000, 1),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


async def _sustain(kubeconfig: Path, rate: float, seconds: float, within_s: float) -> Run:
    """Instances arrive at `rate` per second for `seconds`, evenly spaced; each is deleted as
    soon as the watcher sees it Ready; then wait until every one is gone."""
    run = Run()
    count = max(1, round(rate * seconds))
    names_ = [f"sustained-{i}" for i in range(count)]
    async with (
        KubeClient.from_kubeconfig(kubeconfig) as kube,
        KubeClient.from_kubeconfig(kubeconfig) as watcher,
    ):
        started = asyncio.Event()
        watching = asyncio.create_task(_watch(watcher, run, started))
        await asyncio.wait_for(started.wait(), 120)
        requests: set[asyncio.Task[Any]] = set()

        async def create(name: str) -> None:
            run.created[name] = time.monotonic()
            run.wall[("created", name)] = time.time()
            await kube.create(INSTANCES, lifecycle._manifest(name, INSTANCE_NAMESPACE))

        async def delete(name: str) -> None:
            run.deleted[name] = time.monotonic()
            run.wall[("deleted", name)] = time.time()
            await kube.delete(f"{INSTANCES}/{name}")

        def send(request: Coroutine[Any, Any, None]) -> None:
            task = asyncio.create_task(request)
            requests.add(task)  # held: the loop keeps only weak references
            task.add_done_callback(requests.discard)

        run.on_ready = lambda name: send(delete(name))
        try:
            began = time.monotonic()
            for i, name in enumerate(names_):
                # Due times, not sleeps between sends: a late send does not delay the rest.
                await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
                send(create(name))
            await run.until(
                lambda: all(x in run.gone for x in names_), within_s, "every instance gone"
            )
            failed = [task for task in requests if task.done() and task.exception()]
            if failed:
                raise RuntimeError(f"{len(failed)} requests failed") from failed[0].exception()
        finally:
            watching.cancel()
            for task in requests:
                task.cancel()
    return run


HOPS = (
    "create_to_launch",
    "provision_job",
    "job_end_to_ready",
    "delete_to_launch",
    "deprovision_job",
    "job_end_to_gone",
)


def _hops(run: Run, jobs: list[dict[str, Any]], names_: list[str]) -> dict[str, dict[str, float]]:
    """Per instance, where its cycle went, in seconds: create sent → provision job created (the
    operator's pass and launch), the job (created → finished), job finished → Ready seen, and
    the same three for the deletion. Instances without both successful jobs are left out."""
    by_instance: dict[str, dict[str, Any]] = {}
    for job in job_records(jobs):
        if job.status == "successful" and job.finished is not None:
            by_instance.setdefault(job.instance, {})[job.kind] = job
    out = {}
    for name in names_:
        done = by_instance.get(name, {})
        if "provision" not in done or "deprovision" not in done or name not in run.gone:
            continue
        up, down = done["provision"], done["deprovision"]
        wall = {mark: run.wall[(mark, name)] for mark in ("created", "ready", "deleted", "gone")}
        out[name] = {
            "create_to_launch": up.created - wall["created"],
            "provision_job": up.finished - up.created,
            "job_end_to_ready": wall["ready"] - up.finished,
            "delete_to_launch": down.created - wall["deleted"],
            "deprovision_job": down.finished - down.created,
            "job_end_to_gone": wall["gone"] - down.finished,
            "created_at_s": run.created[name] - min(run.created.values()),
        }
    return out


def _tail(hops: dict[str, dict[str, float]], ratios: dict[str, float]) -> dict[str, Any]:
    """Each hop's p50/p99/max in ms, and the instances at or above the overhead p99 with
    their hops (ms) and when in the run they were created (s)."""
    cut = _quantile(list(ratios.values()), 0.99)
    return {
        "hop_ms": {
            hop: {
                q: round(_quantile([h[hop] for h in hops.values()], v) * 1000, 1)
                for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
            }
            for hop in HOPS
        }
        if hops
        else {},
        "worst": [
            {"name": name, "overhead": round(ratios[name], 4)}
            | {
                hop: round(value * (1 if hop == "created_at_s" else 1000), 1)
                for hop, value in hops.get(name, {}).items()
            }
            for name in sorted(ratios, key=ratios.__getitem__, reverse=True)
            if ratios[name] >= cut
        ],
    }


def sustained(
    stack: StackHandle, rate: float, seconds: float, within_s: float, cpu: StackCpu
) -> dict[str, Any]:
    """Figures of a sustained-arrival run at `rate` lifecycles per second (see _sustain)."""
    load_before = os.getloadavg()
    cpu_before, began = cpu.sample(), time.monotonic()
    run = in_thread(lambda: _sustain(stack.kubeconfig, rate, seconds, within_s))
    window = Window(began, time.monotonic(), cpu_before, cpu.sample())
    names_ = sorted(run.created)
    jobs = lifecycle._jobs(stack)
    _, _, ratios = _overheads(run, _backend_durations(jobs), names_)
    tail = _tail(_hops(run, jobs, names_), dict(zip(names_, ratios, strict=True)))
    return {
        "arrival_per_s": round(rate, 2),
        "arrival_s": seconds,
        "lifecycles": len(names_),
        "lifecycles_completed": sum(1 for x in names_ if x in run.ready and x in run.gone),
        "wall_s": round(window.wall_s, 1),
        "overhead_p50": round(_quantile(ratios, 0.5), 4),
        "overhead_p99": round(_quantile(ratios, 0.99), 4),
        "watch_p50_ms": round(_quantile(run.watch_delays, 0.5) * 1000, 1),
        "watch_p99_ms": round(_quantile(run.watch_delays, 0.99) * 1000, 1),
        "stack_share_of_cores": round(window.stack_cpu_s() / (cores() * window.wall_s), 3),
        "other_cpu_share": round(window.other_cpu_s() / (cores() * window.wall_s), 3),
        "stack_cpu_ms_per_lifecycle_by_part": {
            part: round(s * 1000 / len(names_), 1) for part, s in window.cpu_by_part().items()
        },
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "tail": tail,
        "began_at": round(began + time.time() - time.monotonic(), 3),
        # Resident memory at the end: a leak shows here.
        "rss_mb_after": {part: _rss_mb(pid) for part, pid in cpu.pids.items()},
    }


@dataclass(frozen=True)
class Plan:
    """What to run on each stack: the burst sizes, then (after the largest) the sustained run."""

    sizes: list[int]
    within_s: float
    sustained_share: float
    sustained_seconds: float
    sustained_rate: float | None = None
    """Arrivals per second; None: `sustained_share` of the largest burst's drain."""


async def run_sizes(
    plan: Plan, *, notifications: bool, simulate: dict[str, Any], boot: float
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Each size's burst on a fresh stack; after the largest, on the same stack, the sustained
    run at `sustained_share` of the drain rate it measured (none if seconds is 0)."""
    results, steady = [], None
    simulator_tid = threading.get_native_id()  # this loop's thread runs the VM simulator
    for n in plan.sizes:
        with tempfile.TemporaryDirectory(prefix=f"ck-scale-{n}-") as tmp:
            stack = await start_stack(
                provider="aap",
                state_dir=Path(tmp),
                vm_boot_seconds=boot,
                job_notifications=notifications,
                simulated_jobs=simulate,
                with_fulfillment=False,  # not on this path: its idle processes only add noise
            )
            try:
                cpu = _stack_cpu(stack, simulator_tid)
                result = await asyncio.to_thread(measure, stack, n, plan.within_s, cpu)
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
                if n == max(plan.sizes) and plan.sustained_seconds > 0:
                    rate = plan.sustained_rate or (
                        plan.sustained_share * result["burst_drain_lifecycles_per_s"]
                    )
                    steady = await asyncio.to_thread(
                        sustained, stack, rate, plan.sustained_seconds, plan.within_s, cpu
                    )
                    print(json.dumps(steady), file=sys.stderr, flush=True)
            finally:
                await stack.stop()
    return results, steady


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument(
        "--notifications",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="AWX job notifications to the operator (default on); off: polling alone",
    )
    parser.add_argument("--run-seconds", type=float, default=2.0, help="simulated job run time")
    parser.add_argument("--vm-boot-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="per wait, per N")
    parser.add_argument(
        "--sustained-seconds",
        type=float,
        default=300.0,
        help="arrivals of the sustained run, after the largest N (0: none; shorter: a smoke test)",
    )
    parser.add_argument(
        "--sustained-share",
        type=float,
        default=0.7,
        help="the sustained arrival rate as a share of the largest burst's drain rate",
    )
    parser.add_argument(
        "--sustained-rate",
        type=float,
        default=None,
        help="the sustained arrivals per second, instead of a share of the drain rate (to "
        "compare two trees side by side at the same rate on a shared machine)",
    )
    parser.add_argument(
        "--max-launches",
        type=int,
        default=None,
        help="CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT for the operator (default: the operator's, 100)",
    )
    args = parser.parse_args(argv)
    if args.max_launches is not None:
        os.environ["CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT"] = str(args.max_launches)
    plan = Plan(
        sizes=[int(x) for x in args.sizes.split(",")],
        within_s=args.timeout,
        sustained_share=args.sustained_share,
        sustained_seconds=args.sustained_seconds,
        sustained_rate=args.sustained_rate,
    )
    simulate = {"run_seconds": args.run_seconds}
    runs, steady = asyncio.run(
        run_sizes(
            plan, notifications=args.notifications, simulate=simulate, boot=args.vm_boot_seconds
        )
    )
    top = max(runs, key=lambda r: r["n"])
    steady_keys = {}
    if steady is not None:
        steady_keys = {
            "sustained_overhead_p99": steady["overhead_p99"],
            "sustained_watch_p99_ms": steady["watch_p99_ms"],
            "sustained": steady,
        }
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "provider": "aap",
                "jobs": "simulated",
                "notifications": args.notifications,
                "simulated_run_seconds": args.run_seconds,
                "vm_boot_seconds": args.vm_boot_seconds,
                "max_n": top["n"],
                "capacity_ratio": top["burst_capacity_ratio"],
                # The same over the cores the rest of the machine left (a shared machine).
                "capacity_ratio_of_free_cores": top["burst_capacity_ratio_of_free_cores"],
                "operator_cpu_ms_per_lifecycle": top["operator_cpu_ms_per_lifecycle"],
                "api_writes_per_lifecycle": top["api_writes_per_lifecycle"],
                # The burst's overhead: queueing for the cores on a saturated machine.
                "burst_overhead_p99_ratio": top["overhead_p99_ratio"],
                **steady_keys,
                "all_lifecycles_completed": all(
                    r["lifecycles_completed"] == r["n"] and r["sentinels_completed"] == SENTINELS
                    for r in runs
                )
                and (steady is None or steady["lifecycles_completed"] == steady["lifecycles"]),
                "runs": runs,
                "cores": cores(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
