"""The limit of provisioning launches in flight, on the real local stack with simulated jobs.

With CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT=2 and five instances created in one burst, the automation
service never has more than two provision jobs active at once: sampled from its job list while
the burst runs, and checked exactly afterwards from every job's created and finished times.
The instances beyond the limit say in their status that they wait, and all five become Ready.
A sixth instance, deleted while it waits for its first launch, goes at once and nothing is
launched for it, neither provisioning nor deprovisioning.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness.checks import parse_time
from tests.harness.stack_lab import (
    AutomationJob,
    Lab,
    describe,
    job_of,
    open_lab,
    phase,
    status_of,
)
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

LIMIT = 2
BURST = [f"burst-{n}" for n in range(5)]
WAITER = "waits-then-goes"
RUN_SECONDS = 2.0
"""How long each simulated job runs: long enough that the waiting is seen."""
READY_WITHIN_S = 150.0
WAITING_MESSAGE = f"the limit (CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT) is {LIMIT}"


def waiting(obj: Mapping[str, Any] | None) -> bool:
    return any(
        c.get("type") == "Progressing" and c.get("reason") == "WaitingForLaunchSlot"
        for c in status_of(obj).get("conditions") or []
    )


def launched(obj: Mapping[str, Any] | None) -> bool:
    return bool(job_of(obj, "provision"))


def active_provisions(jobs: list[AutomationJob]) -> int:
    return sum(1 for j in jobs if j.kind == "provision" and not j.terminal)


def peak_overlap(jobs: list[AutomationJob]) -> int:
    """The most provision jobs active at one instant, from their created/finished times (an
    end at the same instant as a start counts first: the next launch follows the last end)."""
    edges: list[tuple[datetime, int]] = []
    for job in jobs:
        if job.kind != "provision":
            continue
        created = parse_time(job.created)
        assert created is not None, job
        edges.append((created, 1))
        finished = parse_time(job.finished)
        if finished is not None:
            edges.append((finished, -1))
    peak = current = 0
    for _, step in sorted(edges):
        current += step
        peak = max(peak, current)
    return peak


async def all_ready_while_sampling(lab: Lab) -> int:
    """Poll the job list until every instance of the burst is Ready; the peak seen."""
    peak = 0

    async def sample() -> dict[str, str]:
        nonlocal peak
        peak = max(peak, active_provisions(await lab.automation.jobs()))
        return {name: describe(lab.recorder.latest(name)) for name in BURST}

    await until(
        sample,
        lambda _: all(phase(lab.recorder.latest(name)) == "Ready" for name in BURST),
        within=READY_WITHIN_S,
        what="every instance of the burst Ready",
        interval=0.1,  # the sampling period (the exact check follows from times)
    )
    return peak


async def test_launches_in_flight_are_bounded_and_a_waiting_deletion_launches_nothing(
    tmp_path: Path,
) -> None:
    env = {"CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT": str(LIMIT)}
    simulated = {"run_seconds": RUN_SECONDS}
    async with open_lab(
        tmp_path / "stack",
        vm_boot_seconds=0.3,
        env=env,
        simulated_jobs=simulated,
        with_fulfillment=False,
    ) as lab:
        for name in [*BURST, WAITER]:
            await lab.create(name)
        # Sixth in line behind a limit of two: it waits (and says so) for a while.
        await lab.recorder.wait_for(
            lambda: waiting(lab.recorder.latest(WAITER)) or launched(lab.recorder.latest(WAITER)),
            within=60,
            what=f"{WAITER} waiting or launched",
        )
        if not waiting(lab.recorder.latest(WAITER)):
            jobs = await lab.automation.jobs()
            raise AssertionError(
                f"{WAITER} was launched at once: {peak_overlap(jobs)} provision jobs were "
                f"active at once, the limit is {LIMIT}"
            )
        # It keeps waiting while the jobs ahead of it run: one ends (its instance is Ready), the
        # slot goes to the next in line, and the waiter still holds no finalizer of ours.
        await lab.recorder.wait_for(
            lambda: any(phase(lab.recorder.latest(name)) == "Ready" for name in BURST),
            within=60,
            what="a first instance Ready",
        )
        still = lab.recorder.latest(WAITER)
        assert waiting(still), describe(still)
        assert not (still or {}).get("metadata", {}).get("finalizers"), still
        deleted = await lab.deletion(WAITER)
        await lab.recorder.wait_for(lambda: WAITER in lab.recorder.gone, within=30, what="gone")

        peak_sampled = await all_ready_while_sampling(lab)
        jobs = await lab.automation.jobs()

        assert deleted.get("kind") == "Status", "removed at once, nothing to clean up"
        assert [j for j in jobs if j.instance == WAITER] == [], "nothing launched for it"
        assert peak_sampled <= LIMIT
        assert peak_overlap(jobs) == LIMIT, [(j.instance, j.created, j.finished) for j in jobs]
        assert sorted(j.instance for j in jobs if j.kind == "provision") == BURST
        assert all(j.status == "successful" for j in jobs), jobs

        waited = [n for n in BURST if any(waiting(v) for v in lab.recorder.versions[n])]
        assert len(waited) >= len(BURST) - LIMIT, waited
        messages = {
            c.get("message")
            for name in waited
            for version in lab.recorder.versions[name]
            for c in status_of(version).get("conditions") or []
            if c.get("reason") == "WaitingForLaunchSlot"
        }
        assert messages and all(WAITING_MESSAGE in (m or "") for m in messages), messages
