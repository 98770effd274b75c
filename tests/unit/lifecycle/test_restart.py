"""Restart requests (reference §3.5): visible while they run, done only once KubeVirt re-created
the VirtualMachineInstance, and a reason for every failure."""

from __future__ import annotations

from datetime import timedelta

from cloudkit.api.models import ComputeInstanceStatus, Condition
from tests.unit.lifecycle.sim import World


def _condition(status: ComputeInstanceStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def _request_restart(world: World) -> None:
    assert world.stored is not None
    world.stored.spec.restart_requested_at = world.now
    world.stored.metadata.generation = (world.stored.metadata.generation or 1) + 1
    world.tick(1)


def _ready_world() -> World:
    world = World()
    world.run_to_ready()
    return world


def test_a_restart_deletes_the_vmi_once_and_completes_when_kubevirt_recreated_it() -> None:
    world = _ready_world()
    _request_restart(world)
    assert world.stored is not None
    requested = world.stored.spec.restart_requested_at
    world.reconcile()
    status = world.stored.status
    assert world.restarts == [world.now]
    running = _condition(status, "RestartInProgress")
    assert running is not None and running.status == "True"
    assert running.message.startswith("Restart initiated at ")
    assert status.last_restarted_at is None
    assert any(e.reason == "RestartInitiated" for e in world.events)
    # The request is hashed: provisioning re-runs; it finishing does not complete the restart.
    world.advance(passes=3)
    status = world.stored.status
    assert status.last_restarted_at is None
    assert _condition(status, "RestartInProgress") is not None
    assert world.restarts == [world.restarts[0]], "one VMI deletion per request"
    world.kubevirt_recreates_vmi()
    world.vm_ready = True
    world.tick(1)
    world.reconcile()
    status = world.stored.status
    assert status.last_restarted_at == requested
    assert _condition(status, "RestartInProgress") is None
    assert _condition(status, "RestartFailed") is None
    assert any(e.reason == "Restarted" for e in world.events)
    assert status.ip_address == "10.0.2.1"
    world.advance(passes=2)
    assert world.restarts == [world.restarts[0]]
    assert not world.backend.violations


def test_no_vm_to_restart_is_a_failure_with_its_reason() -> None:
    world = World()
    world.reconcile()  # provisioning launched, no VM yet
    _request_restart(world)
    world.reconcile()
    assert world.stored is not None
    failed = _condition(world.stored.status, "RestartFailed")
    assert failed is not None and (failed.status, failed.reason) == ("True", "NoVMReference")
    assert _condition(world.stored.status, "RestartInProgress") is None
    assert world.restarts == []


def test_a_refused_vmi_deletion_is_a_failure_then_retried() -> None:
    world = _ready_world()
    world.vmi_delete_refused = True
    _request_restart(world)
    requeue = world.reconcile()
    assert world.stored is not None
    failed = _condition(world.stored.status, "RestartFailed")
    assert failed is not None and failed.reason == "VMIDeletionFailed"
    assert "forbidden" in failed.message and "ns-t/vm1" in failed.message
    assert _condition(world.stored.status, "RestartInProgress") is None
    assert requeue is not None and requeue <= world.cfg.poll_interval
    warnings = [e for e in world.events if e.reason == "RestartFailed"]
    world.vmi_delete_refused = False
    world.tick(30)
    world.reconcile()
    assert len(world.restarts) == 1
    assert _condition(world.stored.status, "RestartFailed") is None
    assert _condition(world.stored.status, "RestartInProgress") is not None
    assert len(warnings) == 1


def test_a_failed_provisioning_job_fails_the_restart_in_progress() -> None:
    world = _ready_world()
    _request_restart(world)
    world.reconcile()
    assert world.stored is not None
    job = world.stored.status.provision_job
    assert job is not None
    sim_job = world.backend.jobs[job.id]
    sim_job.fail = True
    world.advance(passes=3)
    failed = _condition(world.stored.status, "RestartFailed")
    assert failed is not None and failed.reason == "ProvisioningFailed"
    assert _condition(world.stored.status, "RestartInProgress") is None
    assert world.stored.status.last_restarted_at is None
    world.advance(passes=3)  # the VMI was deleted once for this request: never again
    assert len(world.restarts) == 1


def test_an_old_request_does_nothing_and_leaves_no_condition() -> None:
    world = _ready_world()
    assert world.stored is not None
    world.stored.status.last_restarted_at = world.now
    world.stored.spec.restart_requested_at = world.now - timedelta(minutes=1)
    world.tick(1)
    world.reconcile()
    assert world.restarts == []
    names = {c.type for c in world.stored.status.conditions}
    assert not names & {"RestartInProgress", "RestartFailed"}


def test_deletion_clears_restart_conditions_and_progressing() -> None:
    world = _ready_world()
    _request_restart(world)
    world.reconcile()
    world.delete()
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    status = world.stored.status
    assert _condition(status, "RestartInProgress") is None
    progressing = _condition(status, "Progressing")
    assert progressing is not None and (progressing.status, progressing.reason) == (
        "False",
        "Deleting",
    )
    assert len(world.restarts) == 1  # a deletion never restarts


def test_the_ip_address_follows_the_vmi() -> None:
    world = _ready_world()
    assert world.stored is not None
    assert world.stored.status.ip_address == "10.0.2.1"
    _request_restart(world)
    world.reconcile()  # the VMI is deleted: no address until the new one reports one
    world.tick(1)
    world.reconcile()
    assert world.stored.status.ip_address is None


def test_kubernetes_whole_second_timestamps_neither_hang_nor_fool_the_restart() -> None:
    """creationTimestamp has whole seconds: a VMI re-created within the request's second ends
    the restart, but the pass that deleted the VMI still sees the old one, which never does."""
    from cloudkit.lifecycle import decide
    from cloudkit.lifecycle.types import (
        Observation,
        RestartOutcome,
        VirtualMachineObservation,
    )

    world = _ready_world()
    assert world.stored is not None
    requested = world.now + timedelta(milliseconds=700)
    world.stored.spec.restart_requested_at = requested
    same_second = requested.replace(microsecond=0)
    vm = VirtualMachineObservation("vm1", "ns-t", True, vmi_created_at=same_second)
    world.now = requested + timedelta(milliseconds=100)
    before = decide(world.stored, Observation(vms=(vm,)), world.now, world.cfg)
    assert before.io is not None, "a tie before any delete is no proof: restart"
    world.stored.status = before.status
    deleted = RestartOutcome("ns-t", "vm1")
    after_delete = decide(
        world.stored, Observation(vms=(vm,), outcomes=(deleted,)), world.now, world.cfg
    )
    world.stored.status = after_delete.status
    assert after_delete.status.last_restarted_at is None
    again = decide(world.stored, Observation(vms=(vm,), outcomes=(deleted,)), world.now, world.cfg)
    assert again.status.last_restarted_at is None, "the stale observation of the deleting pass"
    fresh = decide(world.stored, Observation(vms=(vm,)), world.now, world.cfg)
    assert fresh.status.last_restarted_at == requested, "re-created within the same second"
