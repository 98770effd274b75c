"""The three faults upstream fixed on 2026-02-10, each reproduced as a table test.

2953ef1be: while the cancel was pending the provision entry kept a stale state.
b429e06f3: the pass that found the provision job terminal and launched the deprovision job left
           the provision entry non-terminal.
fbebb50e6: only the state was copied, giving Canceled with the message "running".
"""

from __future__ import annotations

import pytest

from cloudkit.api import names
from cloudkit.api.jobs import JobState
from tests.unit.lifecycle.sim import World


def running_world() -> World:
    world = World()
    world.reconcile()
    job = world.backend.jobs[world.stored.status.provision_job.id]  # type: ignore[union-attr]
    world.backend.progress(job)  # pending -> running
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    prov = world.stored.status.provision_job
    assert prov is not None and (prov.state, prov.message) == (JobState.RUNNING, "running")
    assert world.stored.status.deprovision_job is None
    return world


def first_write_with_deprovision(world: World) -> int:
    return next(i for i, s in enumerate(world.writes) if s.deprovision_job is not None)


def test_cancel_pending_shows_latest_reading_and_no_deprovision() -> None:
    world = running_world()
    world.delete()
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    status = world.stored.status
    prov = status.provision_job
    assert prov is not None
    assert (prov.state, prov.message) == (JobState.RUNNING, "running")
    assert prov.cancel_requested_at is not None
    assert status.deprovision_job is None
    assert status.phase == "Deleting"
    assert world.backend.jobs[prov.id].cancel_requested


@pytest.mark.parametrize(
    ("final", "word"),
    [
        (JobState.CANCELED, "canceled"),
        (JobState.FAILED, "failed"),
        (JobState.SUCCEEDED, "successful"),
    ],
)
def test_deprovision_write_shows_terminal_provision_with_its_message(
    final: JobState, word: str
) -> None:
    world = running_world()
    prov_id = world.stored.status.provision_job.id  # type: ignore[union-attr]
    job = world.backend.jobs[prov_id]
    if final is not JobState.CANCELED:
        job.fail = final is JobState.FAILED
        world.backend.progress(job)  # finishes before the delete is seen
    world.delete()
    world.tick(1)
    world.reconcile()  # cancel requested (or 405) and polled
    world.backend.progress(job)  # the cancel lands
    world.tick(1)
    world.reconcile()
    first = first_write_with_deprovision(world)
    prov = world.writes[first].provision_job
    assert prov is not None
    assert (prov.state, prov.message) == (final, word)
    # and never Canceled with a stale message in any write
    for status in world.writes:
        p = status.provision_job
        if p is not None and p.state is JobState.CANCELED:
            assert p.message == "canceled"
    dep = world.writes[first].deprovision_job
    assert dep is not None and dep.state is JobState.PENDING


def test_delete_during_provision_runs_to_completion_with_one_deprovision_job() -> None:
    world = running_world()
    world.delete()
    for _ in range(10):
        for job in list(world.backend.jobs.values()):
            world.backend.progress(job)
        world.settle_playbooks()
        world.tick(1)
        world.reconcile()
        if world.stored is None:
            break
    assert world.stored is None
    deprovisions = [j for j in world.backend.jobs.values() if j.type == "deprovision"]
    assert len(deprovisions) == 1
    assert world.released_because == ["succeeded"]
    assert not world.vm_exists
    assert not world.backend.violations


def test_canceled_message_never_stale_when_405_races() -> None:
    """The job ended on its own just before the cancel: 405, then its real final reading."""
    world = running_world()
    job = world.backend.jobs[world.stored.status.provision_job.id]  # type: ignore[union-attr]
    world.backend.progress(job)  # successful
    world.delete()
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    prov = world.stored.status.provision_job
    assert prov is not None
    assert (prov.state, prov.message) == (JobState.SUCCEEDED, "successful")
    assert world.stored.status.deprovision_job is not None


def test_finalizer_kept_until_deprovision_succeeds() -> None:
    world = running_world()
    world.delete()
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    assert names.OPERATOR_FINALIZER in world.stored.metadata.finalizers
