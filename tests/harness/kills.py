"""The leader SIGKILLed at random moments of an instance burst, shared by `make test` (2 kills)
and `make soak` (20): every lifecycle completes, every job is launched once, and the time from
each kill to a live replica holding the Lease is measured (goal: lease duration + retry period).
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import time
from dataclasses import dataclass, field

from tests.harness.replicas import LEASE_S, RETRY_S, LeaderLab

TAKEOVER_GOAL_S = LEASE_S + RETRY_S
KILL_GAP_S = (0.5, 4.0)
"""A kill comes this long (uniform) after the previous takeover."""


@dataclass
class KillReport:
    takeovers: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    killed_at: list[float] = field(default_factory=list)
    work_ended_at: float = 0.0

    @property
    def kills_during_work(self) -> int:
        return sum(1 for t in self.killed_at if t < self.work_ended_at)

    def p99(self) -> float:
        ordered = sorted(self.takeovers)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    def summary(self) -> str:
        t = self.takeovers
        return (
            f"{len(t)} kills; takeover s: {[round(x, 1) for x in t]}; "
            f"median {statistics.median(t):.1f}, p99 {self.p99():.1f}, max {max(t):.1f} "
            f"(goal ≤ {TAKEOVER_GOAL_S:.0f}); {self.kills_during_work} while lifecycles ran"
        )


async def two_replicas(lab: LeaderLab) -> tuple[str, str]:
    """Exactly two plain replicas, the first one leading. A plain replica that leads already is
    kept (a new pod costs an operator's start-up); every other one is stopped."""
    holder = await lab.holder()
    keep = holder if holder in lab.plain and holder in lab.replicas else None
    for name in list(lab.replicas):
        if name != keep:
            await lab.signal(name, signal.SIGTERM)
    leader = keep or await lab.start_replica()
    await lab.wait_holder({leader}, within=LEASE_S + RETRY_S + 10)
    standby = await lab.start_replica()
    return leader, standby


async def kill_the_leader(
    lab: LeaderLab, rng: random.Random, kills: int, report: KillReport
) -> None:
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(*KILL_GAP_S))  # the random moment
        leader = await lab.holder()
        assert leader in lab.replicas, f"the Lease holder {leader!r} is not a live replica"
        _, killed_at = await lab.signal(leader, signal.SIGKILL)
        report.killed_at.append(killed_at)
        # The platform replaces the dead pod: a new replica (a new identity) as a standby.
        new = lab.fresh_name()
        replacement = asyncio.create_task(lab.start_replica(new, wait_ready=False))
        live = set(lab.replicas) | {new}  # the killed one was taken out of lab.replicas
        _, seen = await lab.wait_holder(live, within=TAKEOVER_GOAL_S + 20)
        report.takeovers.append(seen - killed_at)
        await replacement


async def _staggered(lab: LeaderLab, name: str, start: float) -> str | None:
    await asyncio.sleep(start)  # the stagger is a schedule, not a wait for a condition
    return await lab.lifecycle(name, within=900)


async def burst_with_kills(
    lab: LeaderLab,
    rng: random.Random,
    *,
    instances: int,
    kills: int,
    prefix: str,
    stagger_s: float = 0.0,
) -> KillReport:
    """`instances` lifecycles (started `stagger_s` apart) while the leader is killed `kills`
    times; what went wrong, and the takeover times."""
    await two_replicas(lab)
    report = KillReport()
    names = [f"{prefix}-{i:02d}" for i in range(instances)]
    started = time.monotonic()
    killing = asyncio.create_task(kill_the_leader(lab, rng, kills, report))
    outcomes = await asyncio.gather(
        *(_staggered(lab, n, i * stagger_s) for i, n in enumerate(names))
    )
    report.work_ended_at = time.monotonic()
    await killing
    report.problems += [f"{n}: {o}" for n, o in zip(names, outcomes, strict=True) if o]
    report.problems += await lab.exactly_once(names)
    print(f"\n{instances} lifecycles in {time.monotonic() - started:.0f}s; {report.summary()}")
    return report
