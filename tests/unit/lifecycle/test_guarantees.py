"""Each lifecycle guarantee pinned by a scripted scenario that fails on every run when broken.

The state machine (test_state_machine.py) explores interleavings at random; these scenarios
walk the exact interleaving each guarantee exists for, so a mutation of the core that breaks one
fails here deterministically. `test_mutants.py` applies those mutations and checks that it does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudkit.api import names
from cloudkit.api.jobs import TERMINAL_STATES, JobState, JobType
from cloudkit.api.models import JobStatus
from cloudkit.lifecycle.deprovision import CLEANUP_MARKED
from tests.unit.lifecycle.sim import Crash, World


def _deleting_ready_world(provider: str = "aap") -> World:
    world = World(provider=provider)
    world.run_to_ready()
    world.delete()
    return world


def _operator_finalizer_held(world: World) -> bool:
    return world.stored is not None and names.OPERATOR_FINALIZER in world.stored.metadata.finalizers


def _deprovision(world: World) -> JobStatus:
    assert world.stored is not None
    job = world.stored.status.deprovision_job
    assert job is not None
    return job


def _events(world: World) -> list[str]:
    return [f"{e.reason}: {e.message}" for e in world.events]


# --- invariant 4: exactly-once launches across crashes ---------------------------------------


@pytest.mark.parametrize("job_type", [JobType.PROVISION, JobType.DEPROVISION])
def test_crash_after_the_launch_reached_the_backend_finds_the_job(job_type: JobType) -> None:
    """The launch arrived, its id was never persisted: the restarted operator finds it by its
    correlation id, well after the lookup grace, and never launches a second job."""
    world = World()
    if job_type is JobType.DEPROVISION:
        world.run_to_ready()
        world.delete()
    with pytest.raises(Crash):
        world.reconcile(crash_after_io=0)
    launched = [cid for t, cid in world.backend.launches if t is job_type]
    assert len(launched) == 1
    world.tick(600)
    world.reconcile()
    assert [cid for t, cid in world.backend.launches if t is job_type] == launched
    assert world.stored is not None
    status = world.stored.status
    job = status.provision_job if job_type is JobType.PROVISION else status.deprovision_job
    assert job is not None and job.id and job.correlation_id == launched[0]
    assert not world.backend.violations


def test_an_intent_never_sent_is_launched_under_its_own_correlation_id() -> None:
    """Crash after persisting the intent, before the launch: nobody has the job, so after the
    lookup grace the same intent is launched, with the correlation id that was persisted."""
    world = World()
    with pytest.raises(Crash):
        world.reconcile(crash_at=0)
    assert world.stored is not None and world.stored.status.provision_job is not None
    intended = world.stored.status.provision_job.correlation_id
    assert not world.backend.launches
    world.tick(600)
    world.reconcile()
    assert world.backend.launches == [(JobType.PROVISION, intended)]
    assert world.stored.status.provision_job.correlation_id == intended
    assert world.abandoned_intents() == []


# --- invariant 5: the finalizer goes only when cleanup succeeded ------------------------------


def test_a_failed_blocking_deprovision_job_keeps_the_finalizer_and_is_retried() -> None:
    world = _deleting_ready_world()
    world.reconcile()
    first = _deprovision(world)
    world.backend.jobs[first.id].fail = True
    world.advance(passes=2)  # pending -> running -> failed, each polled
    assert _deprovision(world).state is JobState.FAILED
    assert _operator_finalizer_held(world)
    assert world.released_because == []
    world.tick(world.cfg.retry_backoff_min.total_seconds())
    world.reconcile()
    retried = _deprovision(world)
    assert retried.correlation_id != first.correlation_id and retried.id
    assert any(e.startswith("DeprovisionRetry") for e in _events(world))
    world.advance(passes=3)
    assert world.stored is None and world.released_because == ["succeeded"]
    assert not world.vm_exists


@pytest.mark.parametrize("provider", ["aap", "eda"])
def test_a_refused_deprovision_launch_keeps_the_finalizer_until_the_template_is_fixed(
    provider: str,
) -> None:
    """AAP answers the deprovision launch 404 (template renamed): the finalizer stays, status and
    a Warning event name the template and the answer, and fixing the template completes the
    deletion after the failed-cleanup back-off, without touching the resource."""
    world = _deleting_ready_world(provider)
    world.backend.refused.add(JobType.DEPROVISION)
    world.reconcile()
    job = _deprovision(world)
    assert job.state is JobState.FAILED and job.block_deletion_on_failure
    assert "'deprovision'" in job.message and "no job template" in job.message
    assert "deletion is blocked" in job.message
    warned = [e for e in world.events if e.reason == "DeprovisionLaunchFailed"]
    assert warned and warned[0].type == "Warning" and "'deprovision'" in warned[0].message
    assert _operator_finalizer_held(world) and world.released_because == []
    world.tick(30)
    world.reconcile()  # before the back-off: nothing new
    assert _deprovision(world).correlation_id == job.correlation_id
    assert _operator_finalizer_held(world)
    world.backend.refused.clear()  # the template is fixed in AAP
    world.tick(world.cfg.retry_backoff_min.total_seconds())
    world.reconcile()
    assert _deprovision(world).id
    world.advance(passes=3)
    assert world.stored is None and world.released_because == ["succeeded"]
    assert not world.vm_exists


@pytest.mark.parametrize("how", ["polled", "found-after-crash"])
def test_a_purged_deprovision_job_is_not_taken_for_a_success(how: str) -> None:
    """AWX purged the job before we saw it end: it may have failed and left the VM, so the
    finalizer stays and deprovisioning runs again (also when the job is only found by its
    correlation id after a crash, where no launch outcome carried the blocking policy)."""
    world = _deleting_ready_world()
    if how == "polled":
        world.reconcile()
    else:
        with pytest.raises(Crash):
            world.reconcile(crash_after_io=0)
    (sim_job,) = [j for j in world.backend.jobs.values() if j.type is JobType.DEPROVISION]
    sim_job.state, sim_job.fail, sim_job.purged = JobState.FAILED, True, True
    world.vm_exists = True  # the failed job left the VM behind
    world.tick(5)
    world.reconcile()
    assert _operator_finalizer_held(world) and world.released_because == []
    assert _deprovision(world).purged
    world.tick(world.cfg.retry_backoff_min.total_seconds())
    world.advance(passes=4)
    assert world.stored is None and world.released_because == ["succeeded"]
    assert not world.vm_exists


def _deprovision_running(world: World) -> str:
    """Launch the deprovision job of a deleted instance and let the backend start it."""
    world.reconcile()
    job_id = _deprovision(world).id
    world.backend.progress(world.backend.jobs[job_id])  # running
    world.tick(1)
    world.reconcile()
    assert world.backend.jobs[job_id].state is JobState.RUNNING
    return job_id


def test_aap_releases_at_the_deprovision_playbook_s_last_mark() -> None:
    """AAP direct: the deprovision playbook deleted the VM and then removed the automation
    finalizer it found at launch; that mark is its word that cleanup succeeded, so the
    finalizer goes at once, with the job's success Event, while AWX still runs the job's tail
    (and even if the play fails after its last task)."""
    world = _deleting_ready_world()
    job_id = _deprovision_running(world)
    assert _deprovision(world).automation_finalizer_at_launch is True
    world.backend.jobs[job_id].fail = True  # whatever the play's end, cleanup was done
    world.deprovision_playbook_marks()
    world.tick(0.1)
    world.reconcile()
    assert world.stored is None and world.released_because == ["marked"]
    assert world.backend.jobs[job_id].state is JobState.RUNNING
    succeeded = [e.message for e in world.events if e.reason == "DeprovisionJobSucceeded"]
    assert succeeded == [f"Deprovision job {job_id} is Succeeded: {CLEANUP_MARKED}"]
    assert not world.vm_exists


def test_a_deprovision_whose_playbook_never_saw_the_automation_finalizer_waits_for_its_job() -> (
    None
):
    """No automation finalizer at the deprovision launch (gone before the deletion) and no VM:
    nothing marks this job's cleanup, so only the backend's success releases the instance."""
    world = World()
    world.run_to_ready()
    world.vm_exists = world.vm_ready = False
    world.automation_finalizer_removed_by_hand()
    world.delete()
    job_id = _deprovision_running(world)
    assert _deprovision(world).automation_finalizer_at_launch is False
    world.tick(5)
    world.reconcile()
    assert _operator_finalizer_held(world) and world.released_because == []
    world.backend.progress(world.backend.jobs[job_id])  # successful
    world.tick(1)
    world.reconcile()
    assert world.stored is None and world.released_because == ["succeeded"]


def test_an_automation_finalizer_removed_by_hand_with_the_vm_left_proves_nothing() -> None:
    """The automation finalizer goes while the deprovision job runs, but a VM is still
    listed: not the playbook's mark (it deletes every VM first), so the job's verdict decides."""
    world = _deleting_ready_world()
    job_id = _deprovision_running(world)
    world.automation_finalizer_removed_by_hand()
    assert world.vm_exists
    world.tick(0.1)
    world.reconcile()
    assert _operator_finalizer_held(world) and world.released_because == []
    assert _deprovision(world).state is JobState.RUNNING
    world.backend.progress(world.backend.jobs[job_id])
    world.settle_playbooks()
    world.tick(1)
    world.reconcile()
    assert world.stored is None and world.released_because == ["succeeded"]
    assert not world.vm_exists


# --- delete during provisioning: cancel, then the real final state -----------------------------


def _running_then_deleted(world: World) -> str:
    world.reconcile()
    assert world.stored is not None and world.stored.status.provision_job is not None
    job_id = world.stored.status.provision_job.id
    world.backend.progress(world.backend.jobs[job_id])  # running
    world.tick(1)
    world.reconcile()
    world.delete()
    return job_id


def test_an_accepted_cancel_is_not_the_final_state() -> None:
    """AAP's 202 only means the cancel was asked for; until a reading says Canceled the status
    shows the job's real state and no deprovision job is launched."""
    world = World()
    job_id = _running_then_deleted(world)
    for _ in range(3):  # the cancel takes a while to land
        world.tick(1)
        world.reconcile()
        assert world.stored is not None
        prov = world.stored.status.provision_job
        assert prov is not None and prov.cancel_requested_at is not None
        assert (prov.state, prov.message) == (JobState.RUNNING, "running")
        assert world.stored.status.deprovision_job is None
        assert all(t is JobType.PROVISION for t, _ in world.backend.launches)
    world.backend.progress(world.backend.jobs[job_id])  # the cancel lands
    world.tick(1)
    world.reconcile()
    assert world.stored is not None
    prov = world.stored.status.provision_job
    assert prov is not None
    assert (prov.state, prov.message) == (JobState.CANCELED, "canceled")
    assert world.stored.status.deprovision_job is not None


def test_a_lost_cancel_is_sent_again_after_the_grace_period() -> None:
    world = World()
    world.backend.loses_cancels = True
    job_id = _running_then_deleted(world)
    world.tick(1)
    world.reconcile()
    assert world.backend.cancels == [job_id]
    grace = world.cfg.cancel_grace.total_seconds()
    world.tick(grace / 2)
    world.reconcile()
    assert world.backend.cancels == [job_id]  # within the grace: not re-sent
    world.tick(grace)
    world.reconcile()
    assert world.backend.cancels == [job_id, job_id]
    world.backend.loses_cancels = False
    world.tick(grace + 1)
    world.reconcile()
    world.advance(passes=4)
    assert world.stored is None and world.released_because == ["succeeded"]
    states = {j.state for j in world.backend.jobs.values()}
    assert states <= TERMINAL_STATES


def test_backoff_of_a_refused_launch_runs_from_the_refusal() -> None:
    """An intent resumed long after a crash and refused then is retried a full back-off later."""
    world = _deleting_ready_world()
    with pytest.raises(Crash):
        world.reconcile(crash_at=0)  # deprovision intent persisted, never sent
    world.backend.refused.add(JobType.DEPROVISION)
    world.tick(3600)
    world.reconcile()
    refused = _deprovision(world)
    assert refused.state is JobState.FAILED
    world.tick(world.cfg.retry_backoff_min.total_seconds() - 1)
    world.reconcile()
    assert _deprovision(world).correlation_id == refused.correlation_id
    world.tick(timedelta(seconds=1).total_seconds())
    world.reconcile()
    assert _deprovision(world).correlation_id != refused.correlation_id
