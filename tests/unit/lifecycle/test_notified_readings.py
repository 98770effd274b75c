"""A job notification's reading (`Observation.notified`) is taken as a poll's would be, only
where it moves the current job of the same id forward; with notifications heard, timed polls
start at `notified_first_poll` (the net for a lost notification), not `first_poll`."""

from __future__ import annotations

from datetime import timedelta

from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.api.models import JobStatus
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.jobs import moves_forward, timed_poll_floor
from cloudkit.lifecycle.types import Decision, LaunchProvision, Observation, PollJob, PollOutcome
from tests.unit.lifecycle.sim import World, config

HEARD = config(job_notifications=True)


def _launched_as_job_7(world: World) -> Observation:
    """The launch decided, its intent stored, job 7 launched (Pending) and written."""
    from cloudkit.lifecycle.types import LaunchOutcome

    assert world.stored is not None
    first = decide(world.stored, Observation(vms=()), world.now, world.cfg)
    assert isinstance(first.io, LaunchProvision)
    world.stored.status = first.status
    launched = LaunchOutcome(
        JobType.PROVISION, first.io.correlation_id, reading=JobReading("7", JobState.PENDING, "p")
    )
    observation = Observation(vms=(), outcomes=(launched,))
    world.stored.status = decide(world.stored, observation, world.now, world.cfg).status
    return Observation(vms=())


def _heard(world: World, *readings: JobReading) -> Decision:
    assert world.stored is not None
    return decide(world.stored, Observation(vms=(), notified=readings), world.now, world.cfg)


def _job(decision: Decision) -> JobStatus:
    job = decision.status.provision_job
    assert job is not None
    return job


def test_a_notified_reading_is_taken_without_a_poll() -> None:
    world = World(cfg=HEARD)
    _launched_as_job_7(world)
    world.tick(0.1)
    running = _heard(world, JobReading("7", JobState.RUNNING, "running"))
    assert (_job(running).state, _job(running).message) == (JobState.RUNNING, "running")
    assert running.io is None, "the notification is the reading: no poll after it"
    assert world.stored is not None
    world.stored.status = running.status
    world.tick(0.1)
    done = _heard(world, JobReading("7", JobState.SUCCEEDED, "successful"))
    assert _job(done).state is JobState.SUCCEEDED
    assert [e.reason for e in done.events] == ["ProvisionJobSucceeded"]


def test_a_late_notification_never_undoes_a_newer_reading() -> None:
    """Notifications are separate requests: "pending" may arrive after "running" was read."""
    world = World(cfg=HEARD)
    _launched_as_job_7(world)
    assert world.stored is not None
    world.stored.status = _heard(world, JobReading("7", JobState.RUNNING, "running")).status
    world.tick(0.1)
    for stale in (
        JobReading("7", JobState.PENDING, "pending"),
        JobReading("7", JobState.WAITING, "waiting"),
        JobReading("7", JobState.RUNNING, "running again"),
        JobReading("7", JobState.UNKNOWN, "weird"),
    ):
        after = _heard(world, stale)
        assert (_job(after).state, _job(after).message) == (JobState.RUNNING, "running"), stale
        assert after.status == world.stored.status


def test_a_notification_about_another_job_changes_nothing() -> None:
    world = World(cfg=HEARD)
    _launched_as_job_7(world)
    assert world.stored is not None
    for foreign in ("8", "workflow-7", "", "70"):
        after = _heard(world, JobReading(foreign, JobState.SUCCEEDED, "successful"))
        assert _job(after).state is JobState.PENDING, foreign
        assert after.status == world.stored.status


def test_a_poll_of_the_same_pass_is_newer_than_the_notifications_it_started_with() -> None:
    world = World(cfg=HEARD)
    _launched_as_job_7(world)
    assert world.stored is not None
    world.tick(10)
    # The backend is the authority: what it answers now stands, even against a notification
    # further along (one sent before the backend recorded the state it announces).
    polled = PollOutcome(JobType.PROVISION, "7", JobReading("7", JobState.RUNNING, "running"))
    observation = Observation(
        vms=(), notified=(JobReading("7", JobState.FAILED, "failed"),), outcomes=(polled,)
    )
    after = decide(world.stored, observation, world.now, world.cfg)
    assert (_job(after).state, _job(after).message) == (JobState.RUNNING, "running")


def test_moves_forward_only_along_awx_progress() -> None:
    job = JobStatus(id="7", state=JobState.WAITING)
    assert moves_forward(job, JobReading("7", JobState.RUNNING, "r"))
    assert moves_forward(job, JobReading("7", JobState.CANCELED, "c"))
    assert not moves_forward(job, JobReading("7", JobState.WAITING, "w"))
    assert not moves_forward(job, JobReading("7", JobState.PENDING, "p"))
    assert not moves_forward(job, JobReading("8", JobState.RUNNING, "r"))
    ended = JobStatus(id="7", state=JobState.SUCCEEDED)
    assert not moves_forward(ended, JobReading("7", JobState.FAILED, "f"))
    lost = JobStatus(id="7", state=JobState.UNKNOWN)
    assert moves_forward(lost, JobReading("7", JobState.RUNNING, "r"))
    intent = JobStatus(id="", state=JobState.PENDING)
    assert not moves_forward(intent, JobReading("", JobState.RUNNING, "r"))


def test_with_notifications_heard_timed_polls_are_the_net() -> None:
    """No poll while a reading is younger than `notified_first_poll`; then one, and the next
    after the geometric back-off from that floor. Without notifications: `first_poll`."""
    assert timed_poll_floor(config()) == config().first_poll
    assert timed_poll_floor(HEARD) == HEARD.notified_first_poll
    capped = config(job_notifications=True, poll_interval=timedelta(seconds=2))
    assert timed_poll_floor(capped) == timedelta(seconds=2), "the interval stays the ceiling"

    world = World(cfg=HEARD)
    _launched_as_job_7(world)
    world.tick(HEARD.first_poll.total_seconds())
    waiting = _heard(world)
    assert waiting.io is None
    assert waiting.requeue_after == HEARD.notified_first_poll - HEARD.first_poll
    world.tick((HEARD.notified_first_poll - HEARD.first_poll).total_seconds())
    due = _heard(world)
    assert due.io == PollJob(JobType.PROVISION, "7")
    assert world.stored is not None
    polled = PollOutcome(JobType.PROVISION, "7", JobReading("7", JobState.PENDING, "p"))
    after = decide(world.stored, Observation(vms=(), outcomes=(polled,)), world.now, world.cfg)
    assert after.io is None and after.requeue_after == HEARD.notified_first_poll

    plain = World()
    _launched_as_job_7(plain)
    plain.tick(plain.cfg.first_poll.total_seconds())
    assert _heard(plain).io == PollJob(JobType.PROVISION, "7")
