"""Deletion in every stage of a lifecycle, each stage held open until the deletion has landed.

A stage lasts, by construction, until the test's DELETE has been answered (resilience_holds.py):
- before-intent: the operator is stopped (SIGSTOP) from before the creation until after the
  deletion. It never saw the instance and holds no finalizer, so the API server removes the
  instance at once, and nothing may ever be launched for it.
- intent-persisted: the automation service is stopped from before the creation until the
  deletion has landed. The operator has persisted its launch intent and its finalizer, and its
  launch request waits unread in the service's socket: the launch reaches the service only
  after the deletion (the hard case for exactly-once launches).
- provisioning: the provision job is held running until the deletion cancels it. In `make
  test` the jobs are simulated (the playbooks' effects, held to them by the playbook contract
  tests; the subject here is the operator's decisions): this instance's job runs for
  HELD_RUN_S, which only the cancel ends. In the soak the jobs are the real playbooks, every
  provision job waiting at a gate in front of the real provision playbook, which the test
  opens for these instances only after the deletion has landed (for the others at once).
- after-ready: the instance is Ready.
Within a stage, the moment of the deletion is a seeded-random offset. The API server's answer
to the DELETE is the instance as the deletion left it, so it shows the stage the deletion
landed in, which must be the planned one; the automation service's clock is a second witness.

Every version of every instance is recorded from one watch, and each instance must pass the
delete-during-provision validations plus the automation service's own view: exactly one
deprovision job, launched only after the provision job ended, and a status that agrees with
what the automation service ran. The normal suite runs one deletion per stage with simulated
jobs; the soak twenty, concurrently, in one stack, with the real playbooks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.local.automation.simulation import run_seconds_annotation
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Snapshot, Validation
from tests.harness.checks import (
    all_jobs_terminal,
    exactly_one_deprovision_job,
    failures,
    no_overlapping_jobs,
    one_provision_job_per_correlation_id,
    parse_time,
    status_agrees_with_automation,
    trace_lines,
)
from tests.harness.holds import Holds
from tests.harness.stack_lab import (
    AutomationJob,
    Lab,
    describe,
    job_of,
    open_lab,
    phase,
)

VM_BOOT_SECONDS = 2.0
SIMULATED_JOBS = {"run_seconds": 1.0, "run_seconds_from_annotation": True}
HELD_RUN_S = 3600.0
"""A held simulated provision job's run time: far beyond every deadline, so only the cancel
that the deletion brings ends it."""
STAGGER_S = 0.5
"""Between two creations in the soak, so the stages of different instances overlap."""
ANCHOR_TIMEOUT_S = 300.0
GONE_TIMEOUT_S = 400.0
# Stage → the range of the seeded-random delay after the stage began, seconds. A stopped
# automation service is kept short of the operator's 30 s request timeout.
STAGES: dict[str, tuple[float, float]] = {
    "before-intent": (0.0, 0.3),
    "intent-persisted": (0.0, 0.5),
    "provisioning": (0.0, 3.0),
    "after-ready": (0.0, 1.0),
}


@dataclass
class Plan:
    name: str
    stage: str
    offset: float
    start: float


@dataclass
class Outcome:
    plan: Plan
    answer: dict[str, Any] | None = None
    """The API server's answer to the DELETE: the instance as the deletion left it, or a
    Status when it was removed at once (no finalizer)."""
    landed: dict[str, Any] | None = None
    """The instance as the deletion found it: the answer, or the object its DELETED event
    carried when the answer was a Status."""
    sent_at: float = 0.0
    answered_at: float = 0.0
    """Wall-clock times around the DELETE, to compare with the automation service's clock."""
    gone_after: float | None = None
    error: str | None = None


def plans(rng: random.Random, per_stage: int, stagger: float) -> list[Plan]:
    stages = [s for s in STAGES for _ in range(per_stage)]
    rng.shuffle(stages)
    return [
        Plan(f"del-{i:02d}-{s}", s, round(rng.uniform(*STAGES[s]), 2), i * stagger)
        for i, s in enumerate(stages)
    ]


def intent_persisted(obj: dict[str, Any] | None) -> bool:
    """The operator's finalizer is on and its launch intent (no job id yet) is recorded."""
    prov = job_of(obj, "provision")
    finalizers = ((obj or {}).get("metadata") or {}).get("finalizers") or []
    return (
        names.OPERATOR_FINALIZER in finalizers
        and bool(prov.get("correlationID"))
        and not prov.get("id")
        and prov.get("state") in v.NON_TERMINAL
    )


def stage(obj: dict[str, Any] | None) -> str:
    """The stage of the lifecycle an instance version shows."""
    prov = job_of(obj, "provision")
    finalizers = ((obj or {}).get("metadata") or {}).get("finalizers") or []
    if phase(obj) == "Ready":
        return "after-ready"
    if not prov and names.OPERATOR_FINALIZER not in finalizers:
        return "before-intent"
    if intent_persisted(obj):
        return "intent-persisted"
    if prov.get("id") and prov.get("state") in v.NON_TERMINAL:
        return "provisioning"
    return "elsewhere"


async def delete_now(lab: Lab, outcome: Outcome) -> None:
    outcome.sent_at = time.time()
    outcome.answer = await lab.deletion(outcome.plan.name)
    outcome.answered_at = time.time()


async def wait_until(lab: Lab, name: str, check: Callable[[dict[str, Any] | None], bool]) -> None:
    rec = lab.recorder
    await rec.wait_for(lambda: check(rec.latest(name)), within=ANCHOR_TIMEOUT_S, what=name)


async def create(lab: Lab, holds: Holds, outcome: Outcome) -> str:
    """Create the instance; every stage but provisioning lets its provision job run at once
    (a simulated job through its annotation, a real one through its gate)."""
    held = outcome.plan.stage == "provisioning"
    annotations = {run_seconds_annotation("provision"): str(HELD_RUN_S)} if held else None
    created = await lab.create(outcome.plan.name, annotations=annotations)
    uid = str(created["metadata"]["uid"])
    if not held:
        holds.open_gate(uid)
    return uid


async def before_intent(lab: Lab, holds: Holds, outcome: Outcome) -> None:
    async with holds.paused("operator"):
        await create(lab, holds, outcome)
        await asyncio.sleep(outcome.plan.offset)  # the random moment within the stage
        await delete_now(lab, outcome)


async def with_intent_persisted(lab: Lab, holds: Holds, outcome: Outcome) -> None:
    async with holds.paused("automation"):
        await create(lab, holds, outcome)
        await wait_until(lab, outcome.plan.name, intent_persisted)
        await asyncio.sleep(outcome.plan.offset)
        await delete_now(lab, outcome)


async def while_provisioning(lab: Lab, holds: Holds, outcome: Outcome) -> None:
    uid = await create(lab, holds, outcome)
    try:
        await wait_until(
            lab, outcome.plan.name, lambda obj: bool(job_of(obj, "provision").get("id"))
        )
        await asyncio.sleep(outcome.plan.offset)
        await delete_now(lab, outcome)
    finally:
        holds.open_gate(uid)  # only now may the real provision playbook run


async def after_ready(lab: Lab, holds: Holds, outcome: Outcome) -> None:
    await create(lab, holds, outcome)
    await wait_until(lab, outcome.plan.name, lambda obj: phase(obj) == "Ready")
    await asyncio.sleep(outcome.plan.offset)
    await delete_now(lab, outcome)


DELETE_IN: dict[str, Callable[[Lab, Holds, Outcome], Awaitable[None]]] = {
    "before-intent": before_intent,
    "intent-persisted": with_intent_persisted,
    "provisioning": while_provisioning,
    "after-ready": after_ready,
}


async def run_one(lab: Lab, holds: Holds, plan: Plan) -> Outcome:
    outcome = Outcome(plan)
    rec = lab.recorder
    await asyncio.sleep(plan.start)  # the stagger is a schedule, not a wait for a condition
    try:
        await DELETE_IN[plan.stage](lab, holds, outcome)
    except AssertionError as error:
        outcome.error = f"{error}; last {describe(rec.latest(plan.name))}"
        await lab.delete(plan.name)
    sent = time.monotonic()
    try:
        await rec.wait_for(
            lambda: plan.name in rec.gone, within=GONE_TIMEOUT_S, what=f"{plan.name} gone"
        )
        outcome.gone_after = time.monotonic() - sent
    except AssertionError as error:
        outcome.error = f"{error}; last {describe(rec.latest(plan.name))}"
    removed_at_once = (outcome.answer or {}).get("kind") == "Status"
    outcome.landed = rec.latest(plan.name) if removed_at_once else outcome.answer
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
            v.provision_terminal_with_matching_message(trace),
            v.single_deprovision_after_provision_terminal(trace),
        ]
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    return [
        *common,
        Validation("single-deprovision-job", len(ids) == 1, f"deprovision job ids {sorted(ids)}"),
    ]


def landed_in_plan(outcome: Outcome) -> Validation:
    landed = stage(outcome.landed) if outcome.landed is not None else "not deleted"
    return Validation(
        "deletion-landed-in-planned-stage",
        landed == outcome.plan.stage,
        f"planned {outcome.plan.stage}, landed {landed}: {describe(outcome.landed)}",
    )


def automation_clock_agrees(outcome: Outcome, jobs: list[AutomationJob]) -> Validation:
    """The automation service's own timestamps put the stage where the status says it was."""
    provisions = [j for j in jobs if j.kind == "provision"]
    created = [parse_time(j.created) for j in provisions]
    finished = [parse_time(j.finished) for j in provisions]
    sent = datetime.fromtimestamp(outcome.sent_at, UTC)
    answered = datetime.fromtimestamp(outcome.answered_at, UTC)
    planned = outcome.plan.stage
    if planned == "before-intent":
        ok, rule = not jobs, "no job at all"
    elif planned == "intent-persisted":
        # Unread until SIGCONT, which comes after the answer: every launch arrived later.
        ok = all(at is not None and at > answered for at in created)
        rule = "every provision job created after the deletion was answered"
    elif planned == "provisioning":
        ok = len(provisions) == 1 and all(at is not None and at > sent for at in finished)
        rule = "the provision job finished after the deletion was sent"
    else:
        ok = len(provisions) == 1 and all(at is not None and at < sent for at in finished)
        rule = "the provision job finished before the deletion was sent"
    detail = f"{rule}; sent {sent.isoformat()}, answered {answered.isoformat()}, jobs " + str(
        [(j.id, j.status, j.created, j.finished) for j in provisions]
    )
    return Validation("automation-clock-agrees-with-stage", ok, detail)


async def judge(
    lab: Lab, outcomes: list[Outcome], jobs: list[AutomationJob]
) -> dict[str, list[Validation]]:
    named: dict[str, list[Validation]] = {}
    for outcome in outcomes:
        name = outcome.plan.name
        trace = lab.recorder.snapshots(name)
        versions = lab.recorder.versions[name]
        mine = [j for j in jobs if j.instance == name]
        named[name] = [
            Validation("lifecycle", outcome.error is None, outcome.error or "ok"),
            landed_in_plan(outcome),
            automation_clock_agrees(outcome, mine),
            *scenario_validations(trace, versions, mine),
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
            status_agrees_with_automation(versions, mine),
        ]
    return named


async def run_schedule(state_dir: Path, schedule: list[Plan], *, simulated: bool) -> None:
    """`simulated`: simulated jobs (a held instance's job runs until canceled); else the real
    playbooks behind the gates."""
    async with open_lab(
        state_dir / "stack",
        vm_boot_seconds=VM_BOOT_SECONDS,
        simulated_jobs=SIMULATED_JOBS if simulated else None,
        with_fulfillment=False,
    ) as lab:
        holds = Holds(lab, state_dir / "gates")
        if not simulated:
            await holds.install_gated_provision()
        started = time.monotonic()
        outcomes = await asyncio.gather(*(run_one(lab, holds, plan) for plan in schedule))
        elapsed = time.monotonic() - started
        jobs = await lab.automation.jobs()
        named = await judge(lab, list(outcomes), jobs)
        traces = {name: trace_lines(lab.recorder.versions[name]) for name in lab.recorder.versions}

    print(f"\n{len(schedule)} instances in {elapsed:.1f}s")
    for outcome in outcomes:
        plan = outcome.plan
        gone = f"{outcome.gone_after:.1f}s" if outcome.gone_after is not None else "never"
        ran = ", ".join(f"{j.kind} {j.id} {j.status}" for j in jobs if j.instance == plan.name)
        print(
            f"  {plan.name:28} +{plan.offset:.2f}s landed={stage(outcome.landed):16} "
            f"gone after {gone:7} {describe(outcome.landed)}\n{'':32}automation: {ran or '-'}"
        )
    problems = failures(named)
    for failed in sorted({line.split(":", 1)[0] for line in problems} & set(traces)):
        print(f"  {failed}:", *traces[failed], sep="\n")
    assert not problems, "\n".join(problems)


@pytest.mark.stack
@pytest.mark.timeout(300)
async def test_delete_in_each_stage(tmp_path: Path, rng: random.Random) -> None:
    await run_schedule(tmp_path, plans(rng, per_stage=1, stagger=0.0), simulated=True)


@pytest.mark.stack
@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_delete_at_random_moments(tmp_path: Path, rng: random.Random) -> None:
    await run_schedule(tmp_path, plans(rng, per_stage=5, stagger=STAGGER_S), simulated=False)
