"""Launch slots on the real core: admit → decide → settle as the reconciler runs them. Holders
from the decided statuses, first come first served, wake-ups when a slot frees, the gauges, and
the lane of an instance's watch event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from cloudkit.api import names
from cloudkit.api.jobs import AAP_CAPABILITIES, JobReading, JobState, JobType
from cloudkit.api.models import ComputeInstance
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.types import (
    Decision,
    LaunchOutcome,
    LaunchProvision,
    LifecycleConfig,
    Observation,
    PollOutcome,
)
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.launch_slots import LaunchSlots
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.routing import instance_priority
from cloudkit.operator.settings import load_settings
from cloudkit.operator.workqueue import Priority

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = LifecycleConfig(provider_name="aap", capabilities=AAP_CAPABILITIES)


class Instances:
    """Instances as the API server holds them, each decided through the slots."""

    def __init__(self, slots: LaunchSlots) -> None:
        self.slots = slots
        self.stored: dict[str, ComputeInstance] = {}
        self.woken: list[str] = []
        slots.wake_with(lambda key: self.woken.append(key.name))

    def decide(self, name: str, *outcomes: Any) -> Decision:
        """One decide() of the instance's pass; its status is then stored."""
        instance = self.stored.setdefault(name, _instance(name))
        key = InstanceKey("ns", name)
        observation = self.slots.admit(key, Observation(vms=(), outcomes=outcomes))
        decision = decide(instance, observation, NOW, CONFIG)
        self.slots.settle(key, decision)
        instance.status = decision.status
        return decision

    def launch(self, name: str) -> str:
        """A pass that launches: the intent, then the launch's outcome; the job id."""
        first = self.decide(name)
        assert isinstance(first.io, LaunchProvision), first.status.conditions
        job_id = f"job-{name}"
        reading = JobReading(job_id, JobState.PENDING, "pending")
        self.decide(name, LaunchOutcome(JobType.PROVISION, first.io.correlation_id, reading))
        return job_id

    def finish(self, name: str, state: JobState = JobState.SUCCEEDED) -> None:
        job_id = f"job-{name}"
        self.decide(name, PollOutcome(JobType.PROVISION, job_id, JobReading(job_id, state, "x")))


def _instance(name: str) -> ComputeInstance:
    return ComputeInstance.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
            "spec": {"templateID": "tmpl"},
        }
    )


def _reason(decision: Decision) -> str:
    return next(c.reason for c in decision.status.conditions if c.type == "Progressing")


def test_the_limit_holds_and_the_waiting_launch_first_come_first_served() -> None:
    registry = CollectorRegistry()
    slots = LaunchSlots(2, metrics=OperatorMetrics(registry))
    world = Instances(slots)
    world.launch("a")
    world.launch("b")
    for name in ("c", "d"):
        decision = world.decide(name)
        assert decision.io is None and _reason(decision) == "WaitingForLaunchSlot"
        assert decision.status.provision_job is None
    assert registry.get_sample_value("cloudkit_launch_slots_in_use") == 2
    assert registry.get_sample_value("cloudkit_launches_waiting") == 2
    assert slots.waiting == (InstanceKey("ns", "c"), InstanceKey("ns", "d"))

    world.finish("a")
    assert world.woken == ["c"], "one slot freed: the first in line is woken, only it"
    assert world.decide("d").io is None, "d may not overtake c"
    assert world.decide("e").io is None, "nor may a newcomer"
    world.launch("c")
    assert slots.holders == {InstanceKey("ns", "b"), InstanceKey("ns", "c")}
    world.finish("b", JobState.FAILED)
    assert world.woken == ["c", "d"]
    world.launch("d")
    assert registry.get_sample_value("cloudkit_launch_slots_in_use") == 2
    assert list(slots.waiting) == [InstanceKey("ns", "e")]


def test_the_intent_takes_the_slot_before_the_launch_is_awaited() -> None:
    """Two workers: a's decide() recorded the intent and its launch is in flight (awaited);
    b decides meanwhile and must find the slot taken."""
    slots = LaunchSlots(1)
    world = Instances(slots)
    assert isinstance(world.decide("a").io, LaunchProvision)
    assert world.decide("b").io is None
    assert slots.holders == {InstanceKey("ns", "a")}


def test_a_running_job_keeps_its_slot_on_every_pass() -> None:
    slots = LaunchSlots(1)
    world = Instances(slots)
    job_id = world.launch("a")
    running = JobReading(job_id, JobState.RUNNING, "running")
    world.decide("a", PollOutcome(JobType.PROVISION, job_id, running))
    assert slots.holders == {InstanceKey("ns", "a")}
    assert world.decide("b").io is None


def test_a_gone_or_undecided_key_leaves_its_place_and_wakes_the_next() -> None:
    slots = LaunchSlots(1)
    world = Instances(slots)
    world.launch("a")
    world.decide("b")
    world.decide("c")
    slots.forget(InstanceKey("ns", "a"))  # a deleted with its job done: the slot frees
    assert world.woken == ["b"]
    # b's next pass decides nothing (its spec became unreadable): it leaves the line.
    slots.pass_started(InstanceKey("ns", "b"))
    slots.pass_ended(InstanceKey("ns", "b"))
    assert world.woken == ["b", "c"]
    assert slots.waiting == (InstanceKey("ns", "c"),)
    slots.forget(InstanceKey("ns", "c"))
    assert not slots.waiting


def test_a_decided_pass_keeps_its_place_in_line() -> None:
    slots = LaunchSlots(1)
    world = Instances(slots)
    world.launch("a")
    key = InstanceKey("ns", "b")
    slots.pass_started(key)
    world.decide("b")
    slots.pass_ended(key)
    assert slots.waiting == (key,)


def test_a_deletion_of_a_waiting_instance_does_not_wait() -> None:
    slots = LaunchSlots(1)
    world = Instances(slots)
    world.launch("a")
    world.decide("b")
    world.stored["b"].metadata.deletion_timestamp = NOW
    world.stored["b"].metadata.finalizers = [names.OPERATOR_FINALIZER]
    decision = world.decide("b")
    assert not isinstance(decision.io, LaunchProvision)
    assert slots.waiting == ()
    assert slots.holders == {InstanceKey("ns", "a")}


def test_without_a_limit_nothing_waits_and_holders_are_counted() -> None:
    registry = CollectorRegistry()
    slots = LaunchSlots(0, metrics=OperatorMetrics(registry))
    world = Instances(slots)
    for name in "abc":
        world.launch(name)
    assert registry.get_sample_value("cloudkit_launch_slots_in_use") == 3
    assert slots.waiting == ()


def test_the_limit_applies_to_aap_only() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    aap = {
        "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
        "CLOUDKIT_AAP_URL": "http://aap.invalid/api",
        "CLOUDKIT_AAP_TOKEN": "t",
        "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
        "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
        "CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT": "7",
    }
    eda = {
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK": "http://eda.invalid/p",
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": "http://eda.invalid/d",
        "CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT": "7",
    }
    assert LaunchSlots.configured(load_settings(aap), metrics).limit == 7
    assert LaunchSlots.configured(load_settings(eda), metrics).limit == 0


def test_the_lane_of_an_instance_event() -> None:
    mine = [names.OPERATOR_FINALIZER]
    in_flight = {"conditions": [{"type": "Progressing", "reason": "Provisioning"}]}
    waiting = {"conditions": [{"type": "Progressing", "reason": "WaitingForLaunchSlot"}]}
    assert instance_priority({"metadata": {"name": "new"}}) is Priority.LOW
    assert instance_priority({"metadata": {"finalizers": mine}}) is Priority.LOW
    assert instance_priority({"metadata": {}, "status": in_flight}) is Priority.LOW
    assert instance_priority({"metadata": {"finalizers": mine}, "status": in_flight}) is (
        Priority.NORMAL
    )
    assert instance_priority({"metadata": {"finalizers": mine}, "status": waiting}) is Priority.LOW
    deleted = {"metadata": {"deletionTimestamp": "2026-03-01T00:00:00Z"}}
    assert instance_priority(deleted) is Priority.HIGH


async def test_a_failed_pass_leaves_the_line_and_wakes_the_next() -> None:
    """A pass that fails before deciding (here the API server cannot be reached) must not hold
    the keys behind it through its error backoff, as an undecided pass does not."""
    import socket

    import pytest
    from kubernetes_asyncio import client

    from cloudkit.operator.kube import Kube
    from cloudkit.operator.reconcile import Reconciler
    from cloudkit.operator.startup import build_provider, lifecycle_config

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    settings = load_settings(
        {
            "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
            "CLOUDKIT_AAP_URL": "http://aap.invalid/api",
            "CLOUDKIT_AAP_TOKEN": "t",
            "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
        }
    )
    slots = LaunchSlots(1)
    world = Instances(slots)
    world.launch("a")
    world.decide("b")
    world.decide("c")
    reconciler = Reconciler(
        Kube(client.ApiClient(configuration=configuration)),
        build_provider(settings),
        lifecycle_config(settings),
        OperatorMetrics(CollectorRegistry()),
        slots=slots,
    )
    try:
        slots.forget(InstanceKey("ns", "a"))
        assert world.woken == ["b"]
        with pytest.raises(Exception):  # noqa: B017 - whatever the client raises
            await reconciler.reconcile(InstanceKey("ns", "b"))
        assert world.woken == ["b", "c"]
        assert slots.waiting == (InstanceKey("ns", "c"),)
    finally:
        await reconciler.provider.close()
        await reconciler.kube.close()
