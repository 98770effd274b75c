"""Property tests: the five invariants of design.md §4 under arbitrary interleavings.

A hypothesis state machine drives one instance through create, spec changes, backend progress,
cancels landing, deletion, backend outages, the playbook's write-backs, VM readiness, time, and
operator crashes (between persisting a decision and executing it, and after an action reached
the backend but before its outcome was persisted), a deprovision template that AAP refuses, and
cancels that AAP accepts but loses, restart requests, VMI deletions refused and KubeVirt
re-creating VMIs. After every step it checks:

1. with AAP, at most one non-terminal job per instance in the backend, so no deprovision job is
   launched while the provision job is non-terminal (the backend records any violation); EDA
   can neither cancel nor observe a playbook, so there the playbooks settle that race;
2. every persisted job state comes with the message of the same reading;
3. the first write that records a deprovision job shows the provision job terminal (AAP);
4. exactly-once launches: no correlation id reaches the backend twice, even across crashes, and
   no persisted intent is replaced by another before it reached the backend or was closed;
5. the operator finalizer is released only when deprovisioning succeeded, was skipped, or
   failed without blockDeletionOnFailure; with AAP, "succeeded" is the backend's verdict or
   the job's playbook's last mark (the automation finalizer it found at launch removed, a
   deprovision playbook may reach before its job ends and then fail), never a finalizer
   removed by hand, and no VM is left either way;
and for restarts: one VMI deletion per request (a second only after a crash lost the record of
the first), and `lastRestartedAt` names a request only once
a VMI created after it exists (the simulated shell records any violation).
At the end, with a healthy backend, a deleted instance goes away within a bounded number of
passes and leaves no VM.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cloudkit.api import names
from cloudkit.api.jobs import JobState, JobType
from cloudkit.api.models import ComputeInstanceStatus, JobStatus
from cloudkit.lifecycle.deprovision import EDA_DONE, EDA_WAITING
from cloudkit.lifecycle.provision import EDA_COMPLETED
from tests.unit.lifecycle.sim import AWX_WORD, Crash, World, config

NON_READING_PREFIXES = (
    "Launching ",
    "Failed to get job status",
    "Failed to cancel job",
    "Failed to trigger",
    "Failed to look up",
)


# What the core writes for the EDA jobs it cannot observe, each state with its one message.
EDA_WORDS = {
    (JobType.PROVISION, JobState.SUCCEEDED): EDA_COMPLETED,
    (JobType.DEPROVISION, JobState.RUNNING): EDA_WAITING,
    (JobType.DEPROVISION, JobState.SUCCEEDED): EDA_DONE,
}


def consistent(job: JobStatus, job_type: JobType, provider: str) -> bool:
    """State and message come from one reading (or from a documented non-reading message)."""
    if job.purged or job.message.startswith(NON_READING_PREFIXES):
        return job.state not in {JobState.SUCCEEDED, JobState.CANCELED} or bool(job.purged)
    if provider == "eda":
        # A terminal state only in the core's own words (the launch's reading is never one);
        # otherwise the launch's reading or the core's word for that state.
        word = EDA_WORDS.get((job_type, job.state))
        if job.state.terminal:
            return job.message == word
        return job.message in {AWX_WORD.get(job.state), word}
    if job.message.startswith("canceled before launch"):
        return job.state is JobState.CANCELED
    return job.message == AWX_WORD.get(job.state, job.message)


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.checked_writes = 0
        self.checked_phases = 0
        self.requests: set[object] = set()
        self.eda_succeeded: set[str] = set()

    @rule(provider=st.sampled_from(["aap", "eda"]))
    @precondition(lambda self: not self.world.writes)
    def choose_provider(self, provider: str) -> None:
        self.world = World(provider=provider, cfg=config(provider))

    @rule()
    def reconcile(self) -> None:
        self.world.reconcile()

    @rule(k=st.integers(min_value=0, max_value=3))
    def crash_during_reconcile(self, k: int) -> None:
        # The next reconcile is a fresh process: no memory but the stored object.
        with contextlib.suppress(Crash):
            self.world.reconcile(crash_at=k)

    @rule(k=st.integers(min_value=0, max_value=3))
    def crash_after_action(self, k: int) -> None:
        # The launch (or poll, cancel) reached the backend; its outcome was never persisted.
        with contextlib.suppress(Crash):
            self.world.reconcile(crash_after_io=k)

    @rule(missing=st.booleans())
    def deprovision_template(self, missing: bool) -> None:
        refused = self.world.backend.refused
        if missing:
            refused.add(JobType.DEPROVISION)
        else:
            refused.discard(JobType.DEPROVISION)

    @rule(lost=st.booleans())
    def cancels_lost(self, lost: bool) -> None:
        self.world.backend.loses_cancels = lost

    @rule(data=st.data(), fail=st.booleans())
    def backend_progress(self, data: st.DataObject, fail: bool) -> None:
        active = self.world.backend.active()
        if not active:
            return
        job = data.draw(st.sampled_from(active))
        job.fail = job.fail or fail
        if self.world.provider == "eda":
            self.world.eda_progress()
        else:
            self.world.backend.progress(job)
            self.world.settle_playbooks()

    @rule()
    @precondition(lambda self: self.world.stored is not None and not self.world.stored.deleting)
    def spec_change(self) -> None:
        stored = self.world.stored
        assert stored is not None
        stored.spec.template_parameters = f'{{"n": {len(self.world.writes)}}}'
        stored.metadata.generation = (stored.metadata.generation or 1) + 1

    @rule()
    @precondition(lambda self: self.world.stored is not None and not self.world.stored.deleting)
    def request_restart(self) -> None:
        stored = self.world.stored
        assert stored is not None
        stored.spec.restart_requested_at = self.world.now
        stored.metadata.generation = (stored.metadata.generation or 1) + 1
        self.requests.add(self.world.now)

    @rule()
    def deprovision_playbook_marks(self) -> None:
        self.world.deprovision_playbook_marks()

    @rule()
    @precondition(lambda self: self.world.stored is not None and self.world.stored.deleting)
    def automation_finalizer_removed_by_hand(self) -> None:
        # While deleting, where the release decision could take it for the playbook's mark.
        self.world.automation_finalizer_removed_by_hand()

    @rule()
    def kubevirt_recreates_vmi(self) -> None:
        self.world.kubevirt_recreates_vmi()

    @rule(refused=st.booleans())
    def vmi_deletion(self, refused: bool) -> None:
        self.world.vmi_delete_refused = refused

    @rule()
    def delete(self) -> None:
        self.world.delete()

    @rule(available=st.booleans())
    def backend_availability(self, available: bool) -> None:
        self.world.backend.available = available

    @rule()
    def purge_finished_jobs(self) -> None:
        for job in self.world.backend.jobs.values():
            if job.state in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED}:
                job.purged = True

    @rule(ready=st.booleans())
    def vm_readiness(self, ready: bool) -> None:
        self.world.vm_ready = ready and self.world.vm_exists

    @rule(seconds=st.sampled_from([0.2, 1.0, 10.0, 200.0]))
    def time_passes(self, seconds: float) -> None:
        self.world.tick(seconds)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def one_active_job_and_exactly_once_launches(self) -> None:  # invariants 1 and 4
        assert not self.world.backend.violations, self.world.backend.violations
        if self.world.provider == "aap":
            assert len(self.world.backend.active()) <= 1
        assert not self.world.abandoned_intents(), self.world.abandoned_intents()

    @invariant()
    def state_and_message_from_one_reading(self) -> None:  # invariant 2
        for status in self.world.writes[self.checked_writes :]:
            jobs = (
                (JobType.PROVISION, status.provision_job),
                (JobType.DEPROVISION, status.deprovision_job),
            )
            for job_type, job in jobs:
                if job is not None and job.id:
                    assert consistent(job, job_type, self.world.provider), job
            self._eda_success_at_the_playbook_s_report(status)
        self.checked_writes = len(self.world.writes)

    def _eda_success_at_the_playbook_s_report(self, status: ComputeInstanceStatus) -> None:
        """EDA: the write that first shows a provision job Succeeded carries the playbook's
        report of that job's configuration (the annotation, copied to reconciledConfigVersion)."""
        job = status.provision_job
        if self.world.provider != "eda" or job is None or job.state is not JobState.SUCCEEDED:
            return
        if job.id in self.eda_succeeded:
            return
        self.eda_succeeded.add(job.id)
        assert job.config_version is not None, job
        assert status.reconciled_config_version == job.config_version, status

    @invariant()
    def conditions_match_the_phase(self) -> None:
        """No condition set by a past phase lingers (Progressing follows the phase; a deletion
        drops the restart conditions)."""
        expected = {
            "Progressing": ("True", None),
            "Ready": ("False", "AsExpected"),
            "Failed": ("False", "ProvisioningFailed"),
            "Deleting": ("False", "Deleting"),
        }
        for status in self.world.writes[self.checked_phases :]:
            conditions = {c.type: c for c in status.conditions}
            progressing = conditions.get("Progressing")
            if status.phase is not None and progressing is not None:
                want_status, want_reason = expected[status.phase.value]
                assert progressing.status == want_status, (status.phase, progressing)
                assert want_reason in (None, progressing.reason), (status.phase, progressing)
            if status.phase is not None and status.phase.value == "Deleting":
                assert not {"RestartInProgress", "RestartFailed"} & conditions.keys()
        self.checked_phases = len(self.world.writes)

    @invariant()
    def provision_terminal_before_deprovision(self) -> None:  # invariant 3
        if self.world.provider != "aap":
            return
        first = next((s for s in self.world.writes if s.deprovision_job is not None), None)
        if first is not None:
            assert first.provision_job is None or _settled(first)

    @invariant()
    def one_vmi_deletion_per_restart_request(self) -> None:
        allowed = len(self.requests) + self.world.unrecorded_restarts
        assert len(self.world.restarts) <= allowed, self.world.restarts

    @invariant()
    def finalizer_released_only_when_clean(self) -> None:  # invariant 5
        for reason in self.world.released_because:
            assert not reason.startswith("BAD"), reason

    def teardown(self) -> None:
        """Eventually: a healthy backend lets a deleted instance go, with no VM left."""
        world = self.world
        if world.stored is None or not world.stored.deleting:
            return
        world.backend.available = True
        world.backend.refused.clear()
        world.backend.loses_cancels = False
        for job in world.backend.jobs.values():
            job.fail = False
        for _ in range(40):
            if world.stored is None:
                break
            if world.provider == "eda":
                world.eda_progress()
            else:
                for job in list(world.backend.active()):
                    world.backend.progress(job)
                world.settle_playbooks()
            world.tick(400)
            world.reconcile()
        assert world.stored is None, world.stored and world.stored.status
        if world.provider == "aap":
            assert not world.vm_exists
        assert not world.backend.violations


def _settled(status: ComputeInstanceStatus) -> bool:
    prov = status.provision_job
    assert prov is not None
    return prov.state in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED} or bool(
        prov.purged
    )


# `make test` explores 150 runs of 40 steps; a longer search for a change of the core:
#   CLOUDKIT_STATE_MACHINE_EXAMPLES=3000 .venv/bin/pytest tests/unit/lifecycle/test_state_machine.py
_EXAMPLES = int(os.environ.get("CLOUDKIT_STATE_MACHINE_EXAMPLES", "150"))
Lifecycle.TestCase.settings = settings(
    max_examples=_EXAMPLES,
    stateful_step_count=40 if _EXAMPLES <= 150 else 60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase


def test_names_are_upstream() -> None:
    assert names.OPERATOR_FINALIZER == "cloudkit.openshift.io/computeinstance"
