"""The poll-policy comparison's pure parts: the round plan, a lifecycle's figures from the
automation's job records, failed lifecycles kept out, and the ratio per N with its spread.

Our policy (`adaptive`) and upstream's (`fixed`, reference §3.1) run at once on one stack, each
with its own operator and namespace, so both halves of every round see the same load; rounds
alternate which policy's instance is created first. `benchmarks/lifecycle.py` does the I/O.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

OURS = "adaptive"
UPSTREAM = "fixed"
POLICIES = (OURS, UPSTREAM)
INSTANCE_PREFIX = {OURS: "ours", UPSTREAM: "upstream"}
"""Distinct names per policy: a VM's label carries the bare instance name, so with equal names
one operator's VMs would wake the other operator's instance of that name."""
RATIO_FLOOR_S = 1e-3
"""Our mean overhead below this counts as this in a ratio (it can be ~0 at N=1)."""


@dataclass(frozen=True)
class Round:
    """Round `index` (1-based) of size `n`: n instances per policy, created alternately."""

    n: int
    index: int

    @property
    def order(self) -> tuple[str, str]:
        """Which policy's instance goes first: ours in odd rounds, upstream's in even ones, so
        neither is always the first to reach the API server and the automation's queue."""
        return POLICIES if self.index % 2 else (UPSTREAM, OURS)

    def instances(self) -> list[tuple[str, str]]:
        """(policy, instance name) in creation (and deletion) order: A B A B …"""
        return [
            (policy, f"{INSTANCE_PREFIX[policy]}-{self.n}-{self.index}-{i}")
            for i in range(self.n)
            for policy in self.order
        ]


def plan(sizes: Sequence[int], rounds: int) -> list[Round]:
    """Every round of every size, sizes in the order given (smallest first is the caller's
    choice: a wall-time budget then cuts the longest rounds, never the short ones)."""
    if rounds < 1:
        raise ValueError(f"rounds: must be at least 1, got {rounds}")
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"sizes: each must be at least 1, got {list(sizes)}")
    return [Round(n, index) for n in sizes for index in range(1, rounds + 1)]


def predicted_round_s(durations: Mapping[int, Sequence[float]], n: int) -> float | None:
    """A round of size n, predicted from the longest round of the largest size measured up to
    n, scaled by n (the automation runs a fixed number of jobs at once, so a round's wall time
    grows about linearly with n); None before any round was measured."""
    measured = [m for m, rounds in durations.items() if m <= n and rounds]
    if not measured:
        return None
    largest = max(measured)
    return max(durations[largest]) * n / largest


@dataclass(frozen=True)
class JobRecord:
    """One automation job (AWX's record), attributed to the instance it ran for."""

    id: int
    namespace: str
    instance: str
    kind: str
    """"provision" or "deprovision"."""
    status: str
    seconds: float | None
    """created → finished, queueing included; None while unfinished."""
    created: float = 0.0
    """When the automation created the job (epoch seconds)."""
    finished: float | None = None
    """When the automation recorded it finished (epoch seconds); None while unfinished."""


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def job_records(jobs: Iterable[Mapping[str, Any]]) -> list[JobRecord]:
    """The jobs that name an instance in their launch payload (others are not ours)."""
    records = []
    for job in jobs:
        extra = json.loads(job.get("extra_vars") or "{}")
        payload = extra.get("ansible_eda", {}).get("event", {}).get("payload", {})
        meta = payload.get("metadata") or {}
        if not meta.get("name"):
            continue
        name = str(job.get("name") or "")
        kind = "provision" if "provision" in name and "deprovision" not in name else "deprovision"
        finished = job.get("finished")
        seconds = _time(finished) - _time(job["created"]) if finished else None
        records.append(
            JobRecord(
                id=int(job["id"]),
                namespace=str(meta.get("namespace") or ""),
                instance=str(meta["name"]),
                kind=kind,
                status=str(job.get("status") or ""),
                seconds=seconds,
                created=_time(job["created"]),
                finished=_time(finished) if finished else None,
            )
        )
    return records


def provisions_running(
    records: Iterable[JobRecord], instances: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The (namespace, instance) pairs whose latest provision job has not finished yet.

    Upstream's policy declares Ready at the playbook's last write (reference §3.2 step 6),
    before the automation records the job finished; a delete then cancels the job (§4.3), which
    would fail the lifecycle. So the benchmark deletes only once none is running."""
    latest: dict[tuple[str, str], JobRecord] = {}
    for record in records:
        key = (record.namespace, record.instance)
        if record.kind == "provision" and (key not in latest or record.id > latest[key].id):
            latest[key] = record
    return [key for key in instances if key in latest and latest[key].seconds is None]


@dataclass(frozen=True)
class Backend:
    """The automation's own time for one instance: each job created → finished."""

    provision_s: float
    deprovision_s: float


def backend_seconds(records: Iterable[JobRecord], namespace: str, instance: str) -> Backend | str:
    """Both job times of one instance, or why there is no such figure: a job not found or not
    successful (the latest of each kind counts) fails the lifecycle."""
    latest: dict[str, JobRecord] = {}
    for record in records:
        mine = record.namespace == namespace and record.instance == instance
        if mine and (record.kind not in latest or record.id > latest[record.kind].id):
            latest[record.kind] = record
    seconds: dict[str, float] = {}
    for kind in ("provision", "deprovision"):
        job = latest.get(kind)
        if job is None:
            return f"no {kind} job found"
        if job.status != "successful" or job.seconds is None:
            return f"{kind} job {job.id} {job.status or 'without status'}"
        seconds[kind] = job.seconds
    return Backend(seconds["provision"], seconds["deprovision"])


@dataclass(frozen=True)
class Lifecycle:
    """One instance's lifecycle under one policy; `error` set = failed, no figures."""

    policy: str
    instance: str
    error: str = ""
    provision_s: float = 0.0
    deprovision_s: float = 0.0
    provision_job_s: float = 0.0
    deprovision_job_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def cycle_s(self) -> float:
        return self.provision_s + self.deprovision_s

    @property
    def backend_s(self) -> float:
        return self.provision_job_s + self.deprovision_job_s

    @property
    def overhead_s(self) -> float:
        """What the operator added on top of the automation's own time."""
        return self.cycle_s - self.backend_s


@dataclass(frozen=True)
class Stamps:
    """Monotonic times of one instance: requests sent and what the watch saw."""

    created: float | None = None
    ready: float | None = None
    failed: str | None = None
    """Phase Failed, with its message."""
    deleted: float | None = None
    gone: float | None = None
    refused: str = ""
    """An API request of the benchmark that was refused."""


def judge(policy: str, instance: str, stamps: Stamps, backend: Backend | str) -> Lifecycle:
    """The lifecycle's figures, or the first reason it failed (in the order things happen)."""
    reasons = [
        stamps.refused,
        f"phase Failed: {stamps.failed}" if stamps.failed is not None else "",
        "not Ready before the deadline" if stamps.ready is None else "",
        "not gone before the deadline" if stamps.gone is None else "",
        backend if isinstance(backend, str) else "",
    ]
    error = next((reason for reason in reasons if reason), "")
    if error or isinstance(backend, str):
        return Lifecycle(policy, instance, error=error or "no backend figure")
    assert stamps.created is not None and stamps.ready is not None
    assert stamps.deleted is not None and stamps.gone is not None
    return Lifecycle(
        policy,
        instance,
        provision_s=stamps.ready - stamps.created,
        deprovision_s=stamps.gone - stamps.deleted,
        provision_job_s=backend.provision_s,
        deprovision_job_s=backend.deprovision_s,
    )


def figures(lifecycles: Sequence[Lifecycle]) -> dict[str, Any]:
    """Means over the lifecycles that completed; the failed ones are counted and named."""
    done = [x for x in lifecycles if x.ok]
    failed = [x for x in lifecycles if not x.ok]
    out: dict[str, Any] = {
        "lifecycles": len(lifecycles),
        "failed": len(failed),
        "failed_lifecycles": {x.instance: x.error for x in failed},
    }
    if not done:
        return out

    def mean(values: Iterable[float]) -> float:
        return round(statistics.mean(values), 3)

    cycle = statistics.mean(x.cycle_s for x in done)
    overhead = statistics.mean(x.overhead_s for x in done)
    out.update(
        provision_s_mean=mean(x.provision_s for x in done),
        deprovision_s_mean=mean(x.deprovision_s for x in done),
        cycle_s_mean=round(cycle, 3),
        backend_jobs_s_mean=mean(x.backend_s for x in done),
        overhead_s_mean=round(overhead, 3),
        provision_overhead_s_mean=mean(x.provision_s - x.provision_job_s for x in done),
        deprovision_overhead_s_mean=mean(x.deprovision_s - x.deprovision_job_s for x in done),
        overhead_s_max=round(max(x.overhead_s for x in done), 3),
        overhead_ratio=round(overhead / cycle, 4) if cycle > 0 else None,
    )
    return out


def ratio(upstream: Mapping[str, Any], ours: Mapping[str, Any]) -> float | None:
    """Upstream's mean overhead ÷ ours, for one round; None when either has no figure."""
    theirs, mine = upstream.get("overhead_s_mean"), ours.get("overhead_s_mean")
    if theirs is None or mine is None:
        return None
    return round(float(theirs) / max(float(mine), RATIO_FLOOR_S), 2)


def difference(upstream: Mapping[str, Any], ours: Mapping[str, Any]) -> float | None:
    """Upstream's mean overhead − ours, seconds, for one round: unlike the ratio, it stays
    meaningful when both overheads are near zero (or one is below zero: Ready comes at the
    playbook's last write, before the automation records the job finished)."""
    theirs, mine = upstream.get("overhead_s_mean"), ours.get("overhead_s_mean")
    if theirs is None or mine is None:
        return None
    return round(float(theirs) - float(mine), 3)


def spread(values: Iterable[float | None]) -> dict[str, float] | None:
    """min / median / max of the values that exist; None when none does."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return {"min": present[0], "median": statistics.median(present), "max": present[-1]}
