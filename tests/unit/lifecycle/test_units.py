"""Unit tests of the core's parts: polling, backoff, history, tenant names, management states,
EDA flows and the unreachable-backend message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudkit.api import names
from cloudkit.api.jobs import JobState, JobType
from cloudkit.api.models import ComputeInstanceStatus, JobRecord, JobStatus
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.jobs import poll_delay, retry_at, trim_history
from cloudkit.lifecycle.tenant import tenant_hash, tenant_reference
from cloudkit.lifecycle.types import (
    Decision,
    LaunchDeprovision,
    LaunchProvision,
    Observation,
    RemoveFinalizer,
)
from tests.unit.lifecycle.sim import World, config, new_instance

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_poll_delay_is_sub_second_then_geometric_then_capped() -> None:
    cfg = config()
    job = JobStatus(id="1", state=JobState.RUNNING, launched_at=T, state_changed_at=T)
    assert poll_delay(job, T, cfg) == cfg.first_poll
    assert poll_delay(job, T + timedelta(seconds=4), cfg) == timedelta(seconds=2)
    assert poll_delay(job, T + timedelta(seconds=16), cfg) == timedelta(seconds=8)
    assert poll_delay(job, T + timedelta(hours=1), cfg) == cfg.poll_interval


def _failed(status: ComputeInstanceStatus, at: datetime) -> None:
    status.jobs.append(
        JobRecord(type=JobType.PROVISION, timestamp=at, state=JobState.FAILED, config_version="v")
    )
    status.provision_job = JobStatus(
        id="x", state=JobState.FAILED, launched_at=at, config_version="v", correlation_id="c"
    )


def test_backoff_min_then_twice_the_gap_clamped() -> None:
    cfg = config()
    status = ComputeInstanceStatus()
    _failed(status, T)
    assert retry_at(status, JobType.PROVISION, cfg) == T + cfg.retry_backoff_min
    second = T + timedelta(minutes=2)
    _failed(status, second)
    assert retry_at(status, JobType.PROVISION, cfg) == second + timedelta(minutes=4)
    third = second + timedelta(minutes=20)
    _failed(status, third)
    assert retry_at(status, JobType.PROVISION, cfg) == third + cfg.retry_backoff_max


def test_history_trim_keeps_current_and_latest_success() -> None:
    status = ComputeInstanceStatus()
    status.jobs.append(
        JobRecord(type=JobType.PROVISION, timestamp=T, state=JobState.SUCCEEDED, correlation_id="s")
    )
    for i in range(1, 15):
        status.jobs.append(
            JobRecord(
                type=JobType.PROVISION,
                timestamp=T + timedelta(minutes=i),
                state=JobState.FAILED,
                correlation_id=f"f{i}",
            )
        )
    status.deprovision_job = JobStatus(id="d", correlation_id="d")
    status.jobs.append(
        JobRecord(type=JobType.DEPROVISION, timestamp=T, state=JobState.PENDING, correlation_id="d")
    )
    trim_history(status, 5)
    kept = {r.correlation_id for r in status.jobs}
    assert {"s", "d", "f14", "f13"} <= kept
    assert "f1" not in kept


def test_tenant_namespace_hash() -> None:
    h = tenant_hash("default")
    assert h == h.lower() and "=" not in h and len(h) == 13
    inst = new_instance()
    inst.metadata.annotations[names.TENANT_ANNOTATION] = "acme"
    ref = tenant_reference(inst)
    assert (ref.name, ref.namespace) == ("acme", f"ns-{tenant_hash('acme')}")
    assert tenant_reference(inst, "tenants").namespace == f"tenants-{tenant_hash('acme')}"


def _decide(world: World) -> Decision:
    assert world.stored is not None
    return decide(world.stored, Observation(vms=()), world.now, world.cfg)


def test_unmanaged_is_ignored_while_live_and_deprovisioned_when_deleted() -> None:
    """Upstream's newer rule: releasing an unmanaged instance at once would orphan its VM."""
    world = World()
    world.run_to_ready()
    assert world.stored is not None and world.vm_exists
    world.stored.metadata.annotations[names.MANAGEMENT_STATE_ANNOTATION] = "unmanaged"
    assert _decide(world).ignored
    world.delete()
    decision = _decide(world)
    assert isinstance(decision.io, LaunchDeprovision)
    assert RemoveFinalizer(names.OPERATOR_FINALIZER) not in decision.finalizers
    world.advance(passes=4)
    assert world.stored is None and world.released_because == ["succeeded"]
    assert not world.vm_exists


def test_manual_never_launches_and_releases_at_once_on_delete() -> None:
    world = World()
    assert world.stored is not None
    world.stored.metadata.annotations[names.MANAGEMENT_STATE_ANNOTATION] = "manual"
    world.reconcile()
    assert world.backend.jobs == {}
    world.delete()
    world.reconcile()
    assert world.stored is None and world.backend.jobs == {}


def test_first_decision_is_a_persisted_intent() -> None:
    world = World()
    decision = _decide(world)
    job = decision.status.provision_job
    assert isinstance(decision.io, LaunchProvision)
    assert job is not None and job.id == "" and job.state is JobState.PENDING
    assert job.correlation_id == decision.io.correlation_id == "uid-vm1-provision-1"
    assert decision.status.jobs[-1].correlation_id == job.correlation_id


def test_unreachable_backend_keeps_intent_with_message() -> None:
    world = World()
    world.backend.available = False
    delay = world.reconcile()
    assert world.stored is not None
    job = world.stored.status.provision_job
    assert job is not None and job.id == "" and not job.state.terminal
    assert job.message.startswith("Failed to trigger provisioning: ")
    assert job.message.endswith("; will retry")
    assert delay is not None


def test_eda_provision_completes_on_annotation_and_delete_waits_for_finalizer() -> None:
    world = World(provider="eda")
    world.reconcile()
    assert world.stored is not None
    assert world.stored.status.provision_job is not None
    assert world.stored.status.provision_job.id.startswith("eda-webhook-")
    world.eda_progress()  # the playbook writes the annotation and the automation finalizer
    world.tick(1)
    world.reconcile()
    assert world.stored.status.phase == "Ready"
    world.delete()
    world.reconcile()
    assert world.stored is not None
    dep = world.stored.status.deprovision_job
    assert dep is not None and not dep.state.terminal
    world.eda_progress()  # the deprovision playbook removes the automation finalizer
    world.tick(1)
    world.reconcile()
    assert world.stored is None


def test_eda_delete_without_automation_finalizer_is_skipped() -> None:
    world = World(provider="eda")
    world.reconcile()
    world.delete()
    world.reconcile()
    assert world.stored is None
    assert world.released_because == ["skipped"]


def _finish(world: World, job_id: str) -> None:
    job = world.backend.jobs[job_id]
    while not job.state.terminal:
        world.backend.progress(job)
    world.settle_playbooks()
    world.tick(1)
    world.reconcile()


def _change_spec(world: World, params: str) -> None:
    assert world.stored is not None
    world.stored.spec.template_parameters = params
    world.stored.metadata.generation = (world.stored.metadata.generation or 0) + 1


def test_spec_change_while_running_lets_the_job_finish_then_launches_new_version() -> None:
    world = World()
    world.reconcile()
    assert world.stored is not None and world.stored.status.provision_job is not None
    first = world.stored.status.provision_job.id
    world.backend.progress(world.backend.jobs[first])
    _change_spec(world, '{"b": 1}')
    world.tick(1)
    world.reconcile()
    assert len(world.backend.launches) == 1  # polled, not relaunched
    _finish(world, first)
    assert len(world.backend.launches) == 2
    second = world.stored.status.provision_job
    assert (
        second is not None and second.config_version == world.stored.status.desired_config_version
    )
    _finish(world, second.id)
    assert world.stored.status.phase == "Ready"
    assert world.backend.violations == []


def test_spec_a_b_a_reprovisions_a() -> None:
    world = World()
    world.reconcile()
    assert world.stored is not None and world.stored.status.provision_job is not None
    _finish(world, world.stored.status.provision_job.id)
    assert world.stored.status.phase == "Ready"
    original = world.stored.spec.template_parameters
    _change_spec(world, '{"b": 1}')
    world.tick(1)
    world.reconcile()
    b_job = world.stored.status.provision_job
    assert b_job is not None and len(world.backend.launches) == 2
    _change_spec(world, original or "{}")  # back to A while B runs: annotation still says A
    world.tick(1)
    world.reconcile()
    assert world.stored.status.phase != "Ready" and len(world.backend.launches) == 2
    _finish(world, b_job.id)
    assert len(world.backend.launches) == 3  # A again, once B's job is done


def test_no_poll_while_the_reading_is_fresh() -> None:
    world = World()
    world.reconcile()  # intent, launch, reading folded at the same instant
    assert world.stored is not None
    decision = _decide(world)
    assert decision.io is None
    assert decision.requeue_after is not None
    assert decision.requeue_after <= world.cfg.first_poll
    world.tick(world.cfg.first_poll.total_seconds())
    assert _decide(world).io is not None


def test_non_retryable_launch_failure_fails_then_retries_after_backoff() -> None:
    from cloudkit.lifecycle.types import Failure, FailureKind, LaunchOutcome

    world = World()
    assert world.stored is not None
    first = _decide(world)
    assert isinstance(first.io, LaunchProvision)
    world.stored.status = first.status
    refused = LaunchOutcome(
        JobType.PROVISION,
        first.io.correlation_id,
        failure=Failure(FailureKind.NOT_ALLOWED, "template missing", retryable=False),
    )
    second = decide(world.stored, Observation(vms=(), outcomes=(refused,)), world.now, world.cfg)
    job = second.status.provision_job
    assert job is not None and job.state is JobState.FAILED
    assert job.message == "Failed to trigger provisioning: template missing"
    assert second.status.phase == "Failed" and second.io is None
    assert any(e.type == "Warning" for e in second.events)
    assert second.requeue_after == world.cfg.retry_backoff_min


def test_poll_failure_keeps_state_and_honours_retry_after() -> None:
    from cloudkit.lifecycle.types import Failure, FailureKind, PollOutcome

    world = World()
    world.reconcile()
    assert world.stored is not None and world.stored.status.provision_job is not None
    world.tick(5)
    decision = _decide(world)
    assert decision.io is not None
    job_id = world.stored.status.provision_job.id
    limited = PollOutcome(
        JobType.PROVISION,
        job_id,
        failure=Failure(FailureKind.RATE_LIMITED, "slow down", retry_after=timedelta(seconds=7)),
    )
    after = decide(world.stored, Observation(vms=(), outcomes=(limited,)), world.now, world.cfg)
    job = after.status.provision_job
    assert job is not None and job.state is JobState.PENDING
    assert job.message == "Failed to get job status: slow down"
    assert after.io is None and after.requeue_after == timedelta(seconds=7)


def _launched_as_job_7(world: World, message: str) -> Observation:
    """Decide the launch, store its intent, and return the pass's observation of job 7."""
    from cloudkit.api.jobs import JobReading
    from cloudkit.lifecycle.types import LaunchOutcome

    assert world.stored is not None
    first = _decide(world)
    assert isinstance(first.io, LaunchProvision)
    world.stored.status = first.status
    launched = LaunchOutcome(
        JobType.PROVISION,
        first.io.correlation_id,
        reading=JobReading("7", JobState.PENDING, message),
    )
    return Observation(vms=(), outcomes=(launched,))


def test_refolding_outcomes_is_idempotent() -> None:
    from cloudkit.api.jobs import JobReading
    from cloudkit.lifecycle.types import PollOutcome

    world = World()
    obs = _launched_as_job_7(world, "Provisioning job triggered")
    assert world.stored is not None
    second = decide(world.stored, obs, world.now, world.cfg)
    world.stored.status = second.status
    world.tick(2)
    third = decide(world.stored, obs, world.now, world.cfg)
    assert third.io is not None  # poll due
    polled = PollOutcome(JobType.PROVISION, "7", JobReading("7", JobState.RUNNING, "running"))
    obs = obs.with_outcome(polled)
    fourth = decide(world.stored, obs, world.now, world.cfg)
    world.stored.status = fourth.status
    again = decide(world.stored, obs, world.now, world.cfg)
    assert again.status == fourth.status
    job = again.status.provision_job
    assert job is not None and (job.state, job.message) == (JobState.RUNNING, "running")


def test_available_follows_the_vm_both_ways_and_two_vms_warn() -> None:
    from cloudkit.lifecycle.types import VirtualMachineObservation

    world = World()
    assert world.stored is not None

    def available(*vms: VirtualMachineObservation) -> tuple[str, Decision]:
        assert world.stored is not None
        decision = decide(world.stored, Observation(vms=vms), world.now, world.cfg)
        world.stored.status = decision.status
        cond = next(c for c in decision.status.conditions if c.type == "Available")
        return cond.status, decision

    assert available(VirtualMachineObservation("vm1", "t", True))[0] == "True"
    assert world.stored.status.virtual_machine_reference is not None
    assert available(VirtualMachineObservation("vm1", "t", False))[0] == "False"
    status, decision = available(
        VirtualMachineObservation("a", "t", True), VirtualMachineObservation("b", "t", True)
    )
    assert status == "False"
    assert any(e.reason == "MultipleVirtualMachines" for e in decision.events)


def test_intent_without_id_is_looked_up_before_relaunching_with_the_same_id() -> None:
    from cloudkit.api.jobs import JobReading
    from cloudkit.lifecycle.types import FindJob, LookupOutcome

    world = World()
    assert world.stored is not None
    intent = _decide(world)
    assert isinstance(intent.io, LaunchProvision)
    cid = intent.io.correlation_id
    world.stored.status = intent.status  # persisted; the operator dies before launching
    world.tick(1)
    find = _decide(world)
    assert find.io == FindJob(JobType.PROVISION, cid, since=_launched_at(intent))
    missing = Observation(vms=(), outcomes=(LookupOutcome(JobType.PROVISION, cid),))
    young = decide(world.stored, missing, world.now, world.cfg)
    assert young.io is None and young.requeue_after == world.cfg.launch_lookup_grace - timedelta(
        seconds=1
    )
    world.tick(10)
    old = decide(world.stored, missing, world.now, world.cfg)
    assert old.io == LaunchProvision(cid)  # same correlation id: the backend can dedupe
    found = LookupOutcome(
        JobType.PROVISION, cid, reading=JobReading("42", JobState.RUNNING, "running")
    )
    got = decide(world.stored, Observation(vms=(), outcomes=(found,)), world.now, world.cfg)
    job = got.status.provision_job
    assert job is not None and (job.id, job.state, job.message) == (
        "42",
        JobState.RUNNING,
        "running",
    )
    assert not isinstance(got.io, LaunchProvision)


def _launched_at(decision: Decision) -> datetime:
    job = decision.status.provision_job
    assert job is not None and job.launched_at is not None
    return job.launched_at


def test_a_rate_limited_lookup_of_an_intent_waits_as_told_live_and_at_deletion() -> None:
    """One implementation resumes intents: both paths honour the backend's retry-after."""
    from cloudkit.lifecycle.types import Failure, FailureKind, FindJob, LookupOutcome

    for deleting in (False, True):
        world = World()
        assert world.stored is not None
        intent = _decide(world)
        assert isinstance(intent.io, LaunchProvision)
        world.stored.status = intent.status  # persisted; the operator dies before launching
        world.stored.metadata.finalizers.append(names.OPERATOR_FINALIZER)
        if deleting:
            world.stored.metadata.deletion_timestamp = world.now
        world.tick(1)
        assert isinstance(_decide(world).io, FindJob)
        limited = LookupOutcome(
            JobType.PROVISION,
            intent.io.correlation_id,
            failure=Failure(
                FailureKind.RATE_LIMITED, "slow down", retry_after=timedelta(seconds=7)
            ),
        )
        after = decide(world.stored, Observation(vms=(), outcomes=(limited,)), world.now, world.cfg)
        assert after.io is None and after.requeue_after == timedelta(seconds=7), deleting


def test_a_job_of_another_provider_is_never_polled_or_canceled() -> None:
    """After a switch EDA → AAP, the EDA job (recorded as such, or by its id in a status written
    before jobs recorded their provider) is not asked about; a new AAP job is."""
    from cloudkit.lifecycle.jobs import observable
    from cloudkit.lifecycle.types import CancelJob, PollJob

    aap = config("aap")
    recorded = JobStatus(id="7", state=JobState.RUNNING, message="running", provider="eda")
    legacy = JobStatus(id="eda-webhook-3", state=JobState.RUNNING, message="running")
    ours = JobStatus(id="8", state=JobState.RUNNING, message="running", provider="aap")
    upstream_era = JobStatus(id="9", state=JobState.RUNNING, message="running")
    assert [observable(j, aap) for j in (recorded, legacy, ours, upstream_era)] == [
        False,
        False,
        True,
        True,
    ]
    assert not observable(ours, config("eda"))
    for job in (recorded, legacy):
        world = World()
        assert world.stored is not None
        world.stored.status.provision_job = job.model_copy()
        world.stored.metadata.finalizers.append(names.OPERATOR_FINALIZER)
        world.tick(60)
        live = _decide(world)
        assert not isinstance(live.io, PollJob | CancelJob)
        world.stored.metadata.deletion_timestamp = world.now
        deleting = _decide(world)
        assert not isinstance(deleting.io, PollJob | CancelJob), deleting.io


def test_every_job_records_the_provider_that_runs_it() -> None:
    for provider in ("aap", "eda"):
        world = World(provider=provider)
        world.reconcile()
        assert world.stored is not None
        job = world.stored.status.provision_job
        assert job is not None and job.provider == provider
        assert [r.provider for r in world.stored.status.jobs] == [provider]


def test_upstream_poll_policy_polls_on_every_pass_and_requeues_the_interval() -> None:
    """Reference §3.1 as the baseline policy: whatever wakes a pass (a status write, a VM
    event, the requeue) polls the running job at once, even right after a state change, and
    the requeue is the full interval; the adaptive policy waits out `first_poll` instead."""
    from cloudkit.lifecycle.types import PollJob

    for every_pass in (True, False):
        world = World(cfg=config(poll_every_pass=every_pass))
        world.reconcile()  # launch
        assert world.stored is not None and world.stored.status.provision_job is not None
        job_id = world.stored.status.provision_job.id
        world.tick(0.1)  # a pass woken at once (upstream: by its own status write)
        woken = _decide(world)
        if every_pass:
            assert woken.io == PollJob(JobType.PROVISION, job_id)
        else:
            assert woken.io is None and woken.requeue_after is not None
            assert woken.requeue_after < timedelta(seconds=1)
        requeue = world.reconcile()
        assert requeue is not None
        if every_pass:
            assert requeue == timedelta(seconds=30)
        else:
            assert requeue < timedelta(seconds=30)


def test_upstream_policy_is_ready_at_the_annotation_while_the_job_is_followed() -> None:
    """Reference §3.2 step 6: under the baseline policy the annotation alone makes the instance
    Ready (the running job is still polled to its end); ours also waits for the job's success."""
    from cloudkit.lifecycle.types import PollJob

    for every_pass in (True, False):
        world = World(cfg=config(poll_every_pass=every_pass))
        world.reconcile()
        assert world.stored is not None and world.stored.status.provision_job is not None
        job = world.stored.status.provision_job
        world.stored.metadata.annotations[names.RECONCILED_CONFIG_VERSION_ANNOTATION] = (
            job.config_version or ""
        )
        world.tick(1)
        decision = _decide(world)
        assert (decision.status.phase == "Ready") is every_pass, decision.status.phase
        if every_pass:
            assert decision.io == PollJob(JobType.PROVISION, job.id)


def test_a_job_records_an_event_when_it_ends_not_at_each_step() -> None:
    """Pending → Running shows in the status only; Running → Succeeded is an Event too."""
    from cloudkit.api.jobs import JobReading
    from cloudkit.lifecycle.types import PollOutcome

    world = World()
    obs = _launched_as_job_7(world, "pending")
    assert world.stored is not None
    world.stored.status = decide(world.stored, obs, world.now, world.cfg).status
    world.tick(2)
    running = obs.with_outcome(
        PollOutcome(JobType.PROVISION, "7", JobReading("7", JobState.RUNNING, "running"))
    )
    progressed = decide(world.stored, running, world.now, world.cfg)
    job = progressed.status.provision_job
    assert job is not None and job.state is JobState.RUNNING
    assert [e.reason for e in progressed.events] == []
    world.stored.status = progressed.status
    world.tick(2)
    ended = running.with_outcome(
        PollOutcome(JobType.PROVISION, "7", JobReading("7", JobState.SUCCEEDED, "successful"))
    )
    finished = decide(world.stored, ended, world.now, world.cfg)
    assert [e.reason for e in finished.events] == ["ProvisionJobSucceeded"]


def test_a_deletion_that_ends_with_its_job_s_success_records_one_event_for_both() -> None:
    """The job's Succeeded Event says why the instance is released; a release for another
    reason (here: management-state manual) is its own FinalizerRemoved Event."""
    world = World()
    world.run_to_ready()
    world.delete()
    world.events.clear()
    for _ in range(10):
        if world.stored is None:
            break
        world.advance()
    assert world.stored is None and world.released_because == ["succeeded"]
    reasons = [e.reason for e in world.events]
    assert "DeprovisionJobSucceeded" in reasons and "FinalizerRemoved" not in reasons, reasons

    manual = World()
    assert manual.stored is not None
    manual.stored.metadata.annotations[names.MANAGEMENT_STATE_ANNOTATION] = "manual"
    manual.reconcile()
    manual.delete()
    manual.reconcile()
    assert manual.stored is None
    assert [e.reason for e in manual.events] == ["FinalizerRemoved"]
