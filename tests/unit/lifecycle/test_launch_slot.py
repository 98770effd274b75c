"""The launch slot: an instance the shell holds back records no intent and launches nothing, says
why, and once allowed launches exactly as it would have; deprovisioning never waits."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudkit.api.jobs import JobType
from cloudkit.api.models import ComputeInstance, ConditionType
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.types import Decision, LaunchProvision, Observation
from tests.unit.lifecycle.sim import World, new_instance

HELD = Observation(vms=(), launch_allowed=False, launches_in_flight=100, launch_limit=100)
FREE = Observation(vms=())
WAITING_MESSAGE = (
    "Waiting to launch: 100 provisioning jobs in flight, "
    "the limit (CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT) is 100"
)


def _progressing(decision: Decision) -> tuple[str, str, str]:
    cond = next(c for c in decision.status.conditions if c.type == ConditionType.PROGRESSING)
    return cond.status, cond.reason, cond.message


def _decide(instance: ComputeInstance, observation: Observation, world: World) -> Decision:
    return decide(instance, observation, world.now, world.cfg)


def test_a_held_new_instance_records_no_intent_launches_nothing_and_says_why() -> None:
    world = World()
    assert world.stored is not None
    decision = _decide(world.stored, HELD, world)
    assert decision.io is None
    assert decision.status.provision_job is None and decision.status.jobs == []
    assert decision.requeue_after is None, "the shell wakes it when a slot frees"
    assert decision.finalizers == (), "nothing launched yet: nothing to clean up"
    assert decision.status.phase == "Progressing"
    assert _progressing(decision) == ("True", "WaitingForLaunchSlot", WAITING_MESSAGE)


def test_a_deletion_while_waiting_for_the_first_launch_completes_at_once() -> None:
    world = World(launch_allowed=False)
    world.reconcile()
    assert world.stored is not None and world.stored.metadata.finalizers == []
    world.delete()
    assert world.stored is None
    assert world.backend.launches == []


def test_once_allowed_it_launches_exactly_as_an_instance_never_held() -> None:
    world = World()
    assert world.stored is not None
    world.stored.status = _decide(world.stored, HELD, world).status
    waited = _decide(world.stored, FREE, world)
    fresh = _decide(new_instance(), FREE, world)
    assert isinstance(waited.io, LaunchProvision) and waited.io == fresh.io
    assert waited.status.provision_job == fresh.status.provision_job
    assert waited.status.jobs == fresh.status.jobs
    assert _progressing(waited)[1] == "Provisioning"


def test_a_retry_after_a_failure_waits_for_a_slot_too() -> None:
    world = World()
    world.reconcile()
    assert world.stored is not None and world.stored.status.provision_job is not None
    job = world.backend.jobs[world.stored.status.provision_job.id]
    job.fail = True
    while not job.state.terminal:
        world.backend.progress(job)
    world.tick(1)
    world.reconcile()
    assert world.stored.status.phase == "Failed"
    world.tick(world.cfg.retry_backoff_max.total_seconds())
    held = _decide(world.stored, HELD, world)
    assert held.io is None and held.status.provision_job == world.stored.status.provision_job
    assert "ProvisionRetry" not in {e.reason for e in held.events}
    assert _progressing(held)[1] == "WaitingForLaunchSlot"
    allowed = _decide(world.stored, FREE, world)
    assert isinstance(allowed.io, LaunchProvision)
    assert "ProvisionRetry" in {e.reason for e in allowed.events}


def test_a_spec_change_of_a_ready_instance_waits_for_a_slot() -> None:
    world = World()
    world.run_to_ready()
    assert world.stored is not None
    world.stored.spec.template_parameters = '{"b": 1}'
    world.stored.metadata.generation = 2
    held = _decide(world.stored, HELD, world)
    assert held.io is None and held.status.phase == "Progressing"
    assert held.status.provision_job == world.stored.status.provision_job
    assert _progressing(held)[1] == "WaitingForLaunchSlot"


def test_an_intent_already_recorded_is_not_held_back() -> None:
    """A persisted intent holds its slot: after a crash it is looked up and resumed as ever."""
    world = World()
    assert world.stored is not None
    world.stored.status = _decide(world.stored, FREE, world).status  # crashed after persisting
    world.tick(600)
    assert _decide(world.stored, HELD, world) == _decide(world.stored, FREE, world)


def test_deprovisioning_never_waits_for_a_slot() -> None:
    world = World()
    world.run_to_ready()
    world.delete()
    assert world.stored is not None
    held = _decide(world.stored, HELD, world)
    assert held.io is not None and held == _decide(world.stored, FREE, world)
    world.launch_allowed = False
    world.advance(passes=6)
    assert world.stored is None and world.released_because == ["succeeded"]


STEPS = st.lists(
    st.sampled_from(["pass", "held-pass", "progress", "fail", "spec", "tick", "delete"]),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_a_held_pass_never_records_an_intent_nor_launches_one(steps: list[str]) -> None:
    world = World()
    for n, step in enumerate(steps):
        stored = world.stored
        if stored is None:
            break
        if step in {"pass", "held-pass"}:
            world.launch_allowed = step == "pass"
            before = stored.status.provision_job
            launched = len(world.backend.launches)
            world.reconcile()
            if step == "held-pass" and world.stored is not None:  # (not deleted by the pass)
                after = world.stored.status.provision_job
                cid = before.correlation_id if before else None
                assert (after.correlation_id if after else None) == cid, "a new intent"
                new = [c for t, c in world.backend.launches[launched:] if t is JobType.PROVISION]
                assert set(new) <= {cid}, "a launch that was not a recorded intent's"
        elif step in {"progress", "fail"}:
            for job in world.backend.active():
                job.fail = job.fail or step == "fail"
                world.backend.progress(job)
            world.settle_playbooks()
        elif step == "spec":
            stored.spec.template_parameters = f'{{"n": {n}}}'
            stored.metadata.generation = (stored.metadata.generation or 0) + 1
        elif step == "tick":
            world.tick(timedelta(minutes=31).total_seconds())
        else:
            world.delete()
    # Allowed again, it provisions (or finishes its deletion) as ever.
    world.launch_allowed = True
    world.vm_ready = True
    for _ in range(12):
        world.advance()
        if world.stored is None or world.stored.status.phase == "Ready":
            break
        for job in world.backend.jobs.values():
            job.fail = False
        world.tick(timedelta(minutes=31).total_seconds())
    assert world.stored is None or world.stored.status.phase == "Ready", world.stored.status
    assert world.backend.violations == []
