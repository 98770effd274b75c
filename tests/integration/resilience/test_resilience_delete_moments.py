"""Deletion at 20 seeded-random moments of a lifecycle, in one stack.

Twenty instances are created staggered; each is deleted at a random moment after one of four
anchors: its creation (before the launch), the launch, a running provision job, Ready. Every
version of every instance is recorded from one watch, and each instance must pass every
validation of the delete-during-provision scenario, plus the automation service's own view:
exactly one deprovision job, launched only after the provision job ended, and a status that
agrees with what the automation service ran.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from checks import (
    all_jobs_terminal,
    exactly_one_deprovision_job,
    failures,
    no_overlapping_jobs,
    one_provision_job_per_correlation_id,
    status_agrees_with_automation,
    trace_lines,
)
from resilience_lab import AutomationJob, Lab, describe, job_of, open_lab, phase

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Snapshot, Validation

pytestmark = [pytest.mark.stack, pytest.mark.soak, pytest.mark.timeout(900)]

INSTANCE_COUNT = 20
VM_BOOT_SECONDS = 2.0
STAGGER_S = 0.5
"""Between two creations: the deletions then land on every stage of the others' lifecycles."""
ANCHOR_TIMEOUT_S = 300.0
GONE_TIMEOUT_S = 400.0
# Anchor → the range of the random delay after it, seconds.
MOMENTS: dict[str, tuple[float, float]] = {
    "at-create": (0.0, 0.2),
    "after-launch": (0.0, 1.5),
    "mid-provision": (0.0, 4.0),
    "after-ready": (0.0, 1.0),
}


@dataclass
class Plan:
    name: str
    moment: str
    offset: float
    start: float


@dataclass
class Outcome:
    plan: Plan
    view_at_delete: dict[str, Any] | None = None
    gone_after: float | None = None
    error: str | None = None


def plans(rng: random.Random) -> list[Plan]:
    moments = [m for m in MOMENTS for _ in range(INSTANCE_COUNT // len(MOMENTS))]
    moments += rng.choices(list(MOMENTS), k=INSTANCE_COUNT - len(moments))
    rng.shuffle(moments)
    return [
        Plan(f"del-{i:02d}-{m}", m, round(rng.uniform(*MOMENTS[m]), 2), i * STAGGER_S)
        for i, m in enumerate(moments)
    ]


def anchor(moment: str) -> Callable[[dict[str, Any] | None], bool] | None:
    if moment == "after-launch":
        return lambda obj: bool(job_of(obj, "provision").get("id"))
    if moment == "mid-provision":
        return lambda obj: job_of(obj, "provision").get("state") == "Running"
    if moment == "after-ready":
        return lambda obj: phase(obj) == "Ready"
    return None


def stage(obj: dict[str, Any] | None) -> str:
    """Where the lifecycle was when the delete was sent, as the last recorded version shows."""
    prov = job_of(obj, "provision")
    if phase(obj) == "Ready":
        return "after-ready"
    if not prov.get("id"):
        return "before-launch"
    if prov.get("state") in v.NON_TERMINAL:
        return "provisioning"
    return "provision-ended"


async def run_one(lab: Lab, plan: Plan) -> Outcome:
    outcome = Outcome(plan)
    rec = lab.recorder
    name = plan.name
    await asyncio.sleep(plan.start)  # the stagger is a schedule, not a wait for a condition
    await lab.create(name)
    check = anchor(plan.moment)
    try:
        if check is not None:
            await rec.wait_for(
                lambda: check(rec.latest(name)), within=ANCHOR_TIMEOUT_S, what=f"{name} anchor"
            )
    except AssertionError as error:
        outcome.error = f"{error}; last {describe(rec.latest(name))}"
    await asyncio.sleep(plan.offset)  # the random moment itself
    outcome.view_at_delete = rec.latest(name)
    await lab.delete(name)
    sent = time.monotonic()
    try:
        await rec.wait_for(lambda: name in rec.gone, within=GONE_TIMEOUT_S, what=f"{name} gone")
        outcome.gone_after = time.monotonic() - sent
    except AssertionError as error:
        outcome.error = f"{error}; last {describe(rec.latest(name))}"
    return outcome


def held_finalizer(versions: list[dict[str, Any]]) -> bool:
    return any(
        names.OPERATOR_FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or [])
        for obj in versions
    )


def scenario_validations(
    trace: list[Snapshot], versions: list[dict[str, Any]], jobs: list[AutomationJob]
) -> list[Validation]:
    """The delete-during-provision validations. Two earlier cases have less to judge: deleted
    before the operator's finalizer was on, the API server removes the instance at once, so
    nothing may have been launched for it; deleted before any provision job was even intended,
    only the deprovision is judged."""
    if not held_finalizer(versions):
        return [
            Validation(
                "removed-before-operator-finalizer-nothing-launched",
                not jobs,
                f"automation jobs {[(j.id, j.kind, j.status) for j in jobs]}",
            )
        ]
    common = [v.phase_deleting_after_delete(trace), exactly_one_deprovision_job(jobs)]
    if any(s.job("provision") is not None for s in trace):
        return [
            *common,
            v.provision_terminal_with_matching_message(trace, "aap"),
            v.single_deprovision_after_provision_terminal(trace, "aap"),
        ]
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    return [
        *common,
        Validation("single-deprovision-job", len(ids) == 1, f"deprovision job ids {sorted(ids)}"),
    ]


async def test_delete_at_random_moments(tmp_path: Path, rng: random.Random) -> None:
    schedule = plans(rng)
    async with open_lab(tmp_path / "stack", vm_boot_seconds=VM_BOOT_SECONDS) as lab:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(run_one(lab, plan) for plan in schedule))
        elapsed = time.monotonic() - started
        jobs = await lab.automation.jobs()
        named: dict[str, list[Validation]] = {}
        traces = {name: trace_lines(lab.recorder.versions[name]) for name in lab.recorder.versions}
        for outcome in outcomes:
            name = outcome.plan.name
            trace = lab.recorder.snapshots(name)
            mine = [j for j in jobs if j.instance == name]
            named[name] = [
                Validation("lifecycle", outcome.error is None, outcome.error or "ok"),
                *scenario_validations(trace, lab.recorder.versions[name], mine),
                v.resource_gone(outcome.gone_after is not None, outcome.gone_after or 0.0),
                v.no_orphan_vm(await lab.vms(name), f"{names.VM_INSTANCE_LABEL}={name}"),
                one_provision_job_per_correlation_id(mine),
                Validation(
                    "automation-at-most-one-provision-job",
                    len([j for j in mine if j.kind == "provision"]) <= 1,
                    f"{[(j.id, j.status) for j in mine if j.kind == 'provision']}",
                ),
                no_overlapping_jobs(mine),
                all_jobs_terminal(mine),
                status_agrees_with_automation(lab.recorder.versions[name], mine),
            ]

    print(f"\n{len(schedule)} instances in {elapsed:.1f}s")
    for outcome in outcomes:
        plan = outcome.plan
        gone = f"{outcome.gone_after:.1f}s" if outcome.gone_after is not None else "never"
        print(
            f"  {plan.name:28} +{plan.offset:.2f}s stage={stage(outcome.view_at_delete):15} "
            f"gone after {gone:7} {describe(outcome.view_at_delete)}"
        )
    stages = {stage(o.view_at_delete) for o in outcomes}
    problems = failures(named)
    for wanted in ("before-launch", "provisioning", "after-ready"):
        if wanted not in stages:
            problems.append(f"schedule: no deletion landed {wanted} (stages {sorted(stages)})")
    for failed in sorted({line.split(":", 1)[0] for line in problems} & set(traces)):
        print(f"  {failed}:", *traces[failed], sep="\n")
    assert not problems, "\n".join(problems)
