"""The operator SIGKILLed at 20 seeded-random moments and restarted, while instances live.

One stack; eight instances go create → Ready → delete, staggered, while the operator process
is killed with SIGKILL at random intervals and started again with its own command line and
environment. At the end every lifecycle completed, and the automation service, which outlives
every crash, shows exactly-once launches: never two provision jobs for one correlation id,
never two deprovision jobs, never two jobs of one instance active at once; no VM is left.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Validation
from tests.harness.checks import (
    all_jobs_terminal,
    exactly_one_deprovision_job,
    failures,
    no_overlapping_jobs,
    one_provision_job_per_correlation_id,
    status_agrees_with_automation,
    trace_lines,
)
from tests.harness.stack_lab import Lab, describe, open_lab, phase

pytestmark = [pytest.mark.stack, pytest.mark.soak, pytest.mark.timeout(900)]

INSTANCE_COUNT = 8
KILLS = 20
VM_BOOT_SECONDS = 2.0
STAGGER_S = 4.0
KILL_GAP_S = (0.3, 3.0)
"""A kill comes this long (uniform) after the previous operator became healthy."""
LIFECYCLE_TIMEOUT_S = 400.0


@dataclass
class Lifecycle:
    name: str
    ready_after: float | None = None
    gone_after: float | None = None
    error: str | None = None


@dataclass
class Killer:
    kills: list[float] = field(default_factory=list)
    restart_seconds: list[float] = field(default_factory=list)


async def run_lifecycle(lab: Lab, name: str, start: float) -> Lifecycle:
    result = Lifecycle(name)
    rec = lab.recorder
    await asyncio.sleep(start)  # the stagger is a schedule, not a wait for a condition
    began = time.monotonic()
    try:
        await lab.create(name)
        await rec.wait_for(
            lambda: phase(rec.latest(name)) == "Ready",
            within=LIFECYCLE_TIMEOUT_S,
            what=f"{name} Ready",
        )
        result.ready_after = time.monotonic() - began
        await lab.delete(name)
        await rec.wait_for(
            lambda: name in rec.gone, within=LIFECYCLE_TIMEOUT_S, what=f"{name} gone"
        )
        result.gone_after = time.monotonic() - began
    except AssertionError as error:
        result.error = f"{error}; last {describe(rec.latest(name))}"
    return result


async def kill_repeatedly(lab: Lab, rng: random.Random, killer: Killer) -> None:
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(*KILL_GAP_S))  # the random moment
        killer.kills.append(lab.recorder.now())
        await lab.kill("operator")
        started = time.monotonic()
        await lab.restart_operator()
        killer.restart_seconds.append(time.monotonic() - started)


async def test_operator_sigkilled_at_random_moments(tmp_path: Path, rng: random.Random) -> None:
    names_ = [f"crash-{i:02d}" for i in range(INSTANCE_COUNT)]
    killer = Killer()
    async with open_lab(
        tmp_path / "stack", vm_boot_seconds=VM_BOOT_SECONDS, with_fulfillment=False
    ) as lab:
        started = time.monotonic()
        killing = asyncio.create_task(kill_repeatedly(lab, rng, killer))
        lifecycles = await asyncio.gather(
            *(run_lifecycle(lab, name, i * STAGGER_S) for i, name in enumerate(names_))
        )
        await killing  # every kill happened (and the last restart is healthy)
        elapsed = time.monotonic() - started
        jobs = await lab.automation.jobs()
        named: dict[str, list[Validation]] = {}
        traces = {name: trace_lines(lab.recorder.versions[name]) for name in lab.recorder.versions}
        for result in lifecycles:
            name = result.name
            mine = [j for j in jobs if j.instance == name]
            trace = lab.recorder.snapshots(name)
            named[name] = [
                Validation("lifecycle", result.error is None, result.error or "ok"),
                v.phase_deleting_after_delete(trace),
                v.single_deprovision_after_provision_terminal(trace),
                v.no_orphan_vm(await lab.vms(name), f"{names.VM_INSTANCE_LABEL}={name}"),
                one_provision_job_per_correlation_id(mine),
                exactly_one_deprovision_job(mine),
                no_overlapping_jobs(mine),
                all_jobs_terminal(mine),
                status_agrees_with_automation(lab.recorder.versions[name], mine),
            ]

    print(
        f"\n{INSTANCE_COUNT} lifecycles, {len(killer.kills)} kills in {elapsed:.1f}s; "
        f"kills at {[round(t, 1) for t in killer.kills]}; restarts took "
        f"{[round(t, 1) for t in killer.restart_seconds]}"
    )
    for result in lifecycles:
        print(f"  {result.name}: ready after {result.ready_after}, gone after {result.gone_after}")
    problems = failures(named)
    # The kills must land while lifecycles run, not after they all ended.
    last_gone = max(lab.recorder.gone.values(), default=0.0)
    inside = [t for t in killer.kills if t < last_gone]
    if len(inside) < KILLS // 2:
        problems.append(f"schedule: only {len(inside)} of {KILLS} kills landed during lifecycles")
    for failed in sorted({line.split(":", 1)[0] for line in problems} & set(traces)):
        print(f"  {failed}:", *traces[failed], sep="\n")
    assert not problems, "\n".join(problems)
