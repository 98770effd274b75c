"""A simulated backend and a simulated operator shell around the real, pure decide().

The shell follows the loop documented in cloudkit.lifecycle.types exactly: decide, persist the
status, apply finalizers, execute one I/O action, fold its outcome in, repeat. The backend
behaves like AWX as far as the core can tell (pending → running → final state, cancel with
202/405, purge, lookup by correlation id, unavailability). Both record what the invariants of
design.md §4 are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudkit.api import names
from cloudkit.api.jobs import (
    AAP_CAPABILITIES,
    EDA_CAPABILITIES,
    TERMINAL_STATES,
    JobReading,
    JobState,
    JobType,
)
from cloudkit.api.models import ComputeInstance, ComputeInstanceStatus
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.types import (
    AddFinalizer,
    CancelJob,
    CancelOutcome,
    Failure,
    FailureKind,
    FindJob,
    LaunchDeprovision,
    LaunchOutcome,
    LaunchProvision,
    LifecycleConfig,
    LookupOutcome,
    Observation,
    Outcome,
    PollJob,
    PollOutcome,
    RecordEvent,
    RemoveFinalizer,
    RestartOutcome,
    RestartVirtualMachine,
    VirtualMachineObservation,
)

T0 = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
AWX_WORD = {
    JobState.PENDING: "pending",
    JobState.RUNNING: "running",
    JobState.SUCCEEDED: "successful",
    JobState.FAILED: "failed",
    JobState.CANCELED: "canceled",
}
UNAVAILABLE = Failure(FailureKind.UNAVAILABLE, "connection refused", retryable=True)
FORBIDDEN = Failure(FailureKind.NOT_ALLOWED, "virtualmachineinstances is forbidden", False)
REFUSED = Failure(
    FailureKind.NOT_FOUND,
    "launching job template 'deprovision': no job template or workflow job template named "
    "'deprovision'",
    retryable=False,
)


def config(provider: str = "aap", **kw: Any) -> LifecycleConfig:
    caps = AAP_CAPABILITIES if provider == "aap" else EDA_CAPABILITIES
    return LifecycleConfig(provider_name=provider, capabilities=caps, **kw)


def new_instance(name: str = "vm1") -> ComputeInstance:
    return ComputeInstance.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
            "spec": {"templateID": "tmpl", "templateParameters": "{}"},
        }
    )


class Crash(Exception):
    """The operator process died: before an action ran, or after it reached the backend but
    before its outcome was persisted."""


@dataclass
class SimJob:
    id: str
    type: JobType
    correlation_id: str
    config_version: str | None
    state: JobState = JobState.PENDING
    cancel_requested: bool = False
    purged: bool = False
    fail: bool = False
    redelivered: bool = False
    """EDA: the same webhook sent again after a crash; the rulebook runs the playbook again."""

    def reading(self) -> JobReading:
        if self.purged:
            return JobReading(self.id, JobState.UNKNOWN, "purged", purged=True)
        return JobReading(self.id, self.state, AWX_WORD.get(self.state, "unknown"))


@dataclass
class Backend:
    provider: str = "aap"
    jobs: dict[str, SimJob] = field(default_factory=dict)
    launches: list[tuple[JobType, str]] = field(default_factory=list)
    available: bool = True
    violations: list[str] = field(default_factory=list)
    next_id: int = 100
    redeliveries: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    """Job ids of every cancel request that reached the backend, in order."""
    refused: set[JobType] = field(default_factory=set)
    """Job types whose template is missing: AAP answers their launch 404, for good."""
    loses_cancels: bool = False
    """A cancel is accepted (202) but never lands (AWX can lose one)."""

    def active(self) -> list[SimJob]:
        """Jobs the operator answers for: not finished, not an EDA redelivery (at-least-once:
        a second run of a playbook the operator already sent, which it cannot observe)."""
        return [
            j
            for j in self.jobs.values()
            if j.state not in TERMINAL_STATES and not j.purged and not j.redelivered
        ]

    def launch(self, job_type: JobType, cid: str, cfg_version: str | None) -> SimJob:
        if self.provider == "eda" and any(c == cid for _, c in self.launches):
            # EDA cannot be asked whether a webhook arrived: a crash between the POST and the
            # persisted id re-sends it (at-least-once; the playbooks are idempotent).
            self.redeliveries.append(cid)
        elif any(c == cid for _, c in self.launches):
            self.violations.append(f"second launch with correlation id {cid}")
        elif self.active() and self.provider == "aap":
            # EDA cannot cancel or observe a playbook: a deletion sends the deprovision webhook
            # while a provision playbook may still run (the playbooks settle that race).
            self.violations.append(f"{job_type} launched while {self.active()[0].id} active")
        self.launches.append((job_type, cid))
        self.next_id += 1
        job = SimJob(str(self.next_id), job_type, cid, cfg_version)
        job.redelivered = cid in self.redeliveries
        if self.provider == "eda":
            job.id = f"eda-webhook-{self.next_id}"
            job.state = JobState.RUNNING
        self.jobs[job.id] = job
        return job

    def progress(self, job: SimJob) -> None:
        """One backend step: pending → running → successful/failed; cancels land here too."""
        if job.state in TERMINAL_STATES:
            return
        if job.cancel_requested:
            job.state = JobState.CANCELED
        elif job.state is JobState.PENDING:
            job.state = JobState.RUNNING
        else:
            job.state = JobState.FAILED if job.fail else JobState.SUCCEEDED


@dataclass
class World:
    """The API server's copy of one instance, a backend, VMs, a clock, and write history."""

    provider: str = "aap"
    cfg: LifecycleConfig = field(default_factory=config)
    stored: ComputeInstance | None = field(default_factory=new_instance)
    backend: Backend = field(default_factory=Backend)
    now: datetime = T0
    vm_exists: bool = False
    vm_ready: bool = False
    vmi_created_at: datetime | None = None
    """The VM's VirtualMachineInstance (None: none exists, e.g. just deleted for a restart)."""
    vmi_delete_refused: bool = False
    restarts: list[datetime] = field(default_factory=list)
    """When each VMI deletion (a restart) reached the cluster."""
    unrecorded_restarts: int = 0
    """VMI deletions whose outcome died with the operator: the request is restarted again
    (at least once, never lost: a skipped restart is worse than a second one)."""
    writes: list[ComputeInstanceStatus] = field(default_factory=list)
    released_because: list[str] = field(default_factory=list)
    events: list[RecordEvent] = field(default_factory=list)
    launch_allowed: bool = True
    """The shell's launch slot: False while the limit of launches in flight is reached."""
    marked: set[str] = field(default_factory=set)
    """AAP deprovision jobs whose playbook made its last mark (every VM deleted, then the
    automation finalizer removed) before the backend recorded the job's end."""

    def __post_init__(self) -> None:
        self.backend.provider = self.provider
        if self.provider != self.cfg.provider_name:
            self.cfg = config(self.provider)

    # --- the playbooks' effect on the world ----------------------------------------------------

    def settle_playbooks(self) -> None:
        for job in self.backend.jobs.values():
            if job.state is not JobState.SUCCEEDED or getattr(job, "_applied", False):
                continue
            job._applied = True  # type: ignore[attr-defined]
            if self.stored is None:
                continue
            meta = self.stored.metadata
            if job.type is JobType.PROVISION:
                if not self.vm_exists:
                    self.vmi_created_at = self.now
                self.vm_exists = True
                if job.config_version:
                    meta.annotations[names.RECONCILED_CONFIG_VERSION_ANNOTATION] = (
                        job.config_version
                    )
                if names.AUTOMATION_FINALIZER not in meta.finalizers and not self.stored.deleting:
                    meta.finalizers.append(names.AUTOMATION_FINALIZER)
            else:
                self.vm_exists = False
                self.vm_ready = False
                self.vmi_created_at = None
                if names.AUTOMATION_FINALIZER in meta.finalizers:
                    meta.finalizers.remove(names.AUTOMATION_FINALIZER)
                    self._maybe_gone()

    def deprovision_playbook_marks(self) -> None:
        """AAP: a running deprovision playbook reaches its last task (the VM is gone, then the
        automation finalizer removed) while its job is still running; the job may still end in
        any state after that (its `fail` flag), as a play can fail after its last mark."""
        for job in self.backend.active():
            if job.type is not JobType.DEPROVISION or job.state is not JobState.RUNNING:
                continue
            if getattr(job, "_applied", False) or self.stored is None:
                continue
            job._applied = True  # type: ignore[attr-defined]
            self.vm_exists = self.vm_ready = False
            self.vmi_created_at = None
            finalizers = self.stored.metadata.finalizers
            if names.AUTOMATION_FINALIZER in finalizers:
                self.marked.add(job.id)
                finalizers.remove(names.AUTOMATION_FINALIZER)
                self._maybe_gone()

    def automation_finalizer_removed_by_hand(self) -> None:
        """Someone other than a playbook removes the automation finalizer; the VM stays."""
        if (
            self.stored is not None
            and names.AUTOMATION_FINALIZER in self.stored.metadata.finalizers
        ):
            self.stored.metadata.finalizers.remove(names.AUTOMATION_FINALIZER)
            self._maybe_gone()

    def eda_progress(self) -> None:
        """EDA jobs are not observable; the playbook finishing is what moves the world."""
        for job in self.backend.jobs.values():
            if job.state is JobState.RUNNING:
                job.state = JobState.SUCCEEDED
        self.settle_playbooks()

    def _maybe_gone(self) -> None:
        if self.stored is not None and self.stored.deleting and not self.stored.metadata.finalizers:
            self.stored = None

    # --- the shell ----------------------------------------------------------------------------

    def execute(self, action: object) -> Outcome:
        b = self.backend
        assert self.stored is not None
        if isinstance(action, LaunchProvision | LaunchDeprovision):
            job_type = (
                JobType.PROVISION if isinstance(action, LaunchProvision) else (JobType.DEPROVISION)
            )
            if not b.available:
                return LaunchOutcome(job_type, action.correlation_id, failure=UNAVAILABLE)
            if job_type in b.refused:
                return LaunchOutcome(job_type, action.correlation_id, failure=REFUSED)
            if (
                job_type is JobType.DEPROVISION
                and self.provider == "eda"
                and (names.AUTOMATION_FINALIZER not in self.stored.metadata.finalizers)
            ):
                return LaunchOutcome(job_type, action.correlation_id, skipped=True)
            current = (
                self.stored.status.provision_job
                if job_type is JobType.PROVISION
                else self.stored.status.deprovision_job
            )
            cfg_version = current.config_version if current else None
            job = b.launch(job_type, action.correlation_id, cfg_version)
            reading = job.reading()
            return LaunchOutcome(
                job_type,
                action.correlation_id,
                reading=reading,
                block_deletion_on_failure=self.cfg.capabilities.block_deletion_on_failure,
            )
        if isinstance(action, PollJob):
            if not b.available:
                return PollOutcome(action.job_type, action.job_id, failure=UNAVAILABLE)
            job = b.jobs[action.job_id]
            return PollOutcome(action.job_type, action.job_id, reading=job.reading())
        if isinstance(action, CancelJob):
            if not b.available:
                return CancelOutcome(action.job_id, failure=UNAVAILABLE)
            job = b.jobs[action.job_id]
            b.cancels.append(action.job_id)
            if job.state in TERMINAL_STATES:
                return CancelOutcome(action.job_id, already_terminal=True)
            if b.loses_cancels:
                return CancelOutcome(action.job_id, accepted=True)
            job.cancel_requested = True
            if job.state is JobState.PENDING:
                job.state = JobState.CANCELED  # AWX cancels a queued job at once
            return CancelOutcome(action.job_id, accepted=True)
        if isinstance(action, RestartVirtualMachine):
            if self.vmi_delete_refused:
                return RestartOutcome(action.namespace, action.name, failure=FORBIDDEN)
            if not self.vm_exists or self.vmi_created_at is None:
                return RestartOutcome(action.namespace, action.name, missing=True)
            self.vmi_created_at = None
            self.vm_ready = False
            self.restarts.append(self.now)
            return RestartOutcome(action.namespace, action.name)
        if isinstance(action, FindJob):
            if not b.available:
                return LookupOutcome(action.job_type, action.correlation_id, failure=UNAVAILABLE)
            found = [j for j in b.jobs.values() if j.correlation_id == action.correlation_id]
            return LookupOutcome(
                action.job_type,
                action.correlation_id,
                reading=found[0].reading() if found else None,
            )
        raise AssertionError(f"unknown action {action!r}")

    def reconcile(
        self, *, crash_at: int | None = None, crash_after_io: int | None = None
    ) -> timedelta | None:
        """One reconcile pass, possibly ended by the operator dying (`Crash`).

        crash_at=k: die after persisting the k-th decision's status, before its action runs.
        crash_after_io=k: die after the k-th action reached the backend, before its outcome
        (e.g. the new job's id) was persisted: the crash invariant 4 exists for.
        """
        if self.stored is None:
            return None
        vms = (
            (
                VirtualMachineObservation(
                    "vm1",
                    "ns-t",
                    self.vm_ready,
                    # The API server's timestamps have whole seconds.
                    vmi_created_at=(
                        self.vmi_created_at.replace(microsecond=0)
                        if self.vmi_created_at is not None
                        else None
                    ),
                    ip_address="10.0.2.1" if self.vmi_created_at is not None else None,
                ),
            )
            if self.vm_exists
            else ()
        )
        observation = Observation(vms=vms, launch_allowed=self.launch_allowed)
        for i in range(30):
            assert self.stored is not None
            decision = decide(self.stored, observation, self.now, self.cfg)
            if decision.ignored:
                return None
            self.events.extend(decision.events)
            if decision.status != self.stored.status:
                self._check_restart_record(decision.status)
                self.stored.status = decision.status.model_copy(deep=True)
                self.writes.append(self.stored.status.model_copy(deep=True))
            for change in decision.finalizers:
                fins = self.stored.metadata.finalizers
                if isinstance(change, AddFinalizer) and change.name not in fins:
                    if not self.stored.deleting:
                        fins.append(change.name)
                elif isinstance(change, RemoveFinalizer) and change.name in fins:
                    self.released_because.append(self._release_reason())
                    fins.remove(change.name)
            self._maybe_gone()
            if self.stored is None or decision.io is None:
                return decision.requeue_after
            if crash_at is not None and i >= crash_at:
                raise Crash
            outcome = self.execute(decision.io)
            if crash_after_io is not None and i >= crash_after_io:
                if isinstance(outcome, RestartOutcome) and outcome.failure is None:
                    self.unrecorded_restarts += 1
                raise Crash
            observation = observation.with_outcome(outcome)
        raise AssertionError("decide() did not converge in 30 steps")

    def _release_reason(self) -> str:
        assert self.stored is not None
        dep = self.stored.status.deprovision_job
        state = self.stored.metadata.annotations.get(names.MANAGEMENT_STATE_ANNOTATION)
        if state == names.MANAGEMENT_STATE_MANUAL:
            return "managed-elsewhere"
        if dep is not None and dep.state is JobState.SUCCEEDED:
            return self._aap_success_reason(dep.id) if self.provider == "aap" else "succeeded"
        if self.provider == "eda" and (
            names.AUTOMATION_FINALIZER not in self.stored.metadata.finalizers
        ):
            return "skipped"  # EDA's word that nothing (more) is to be deprovisioned
        if dep is None:
            return "BAD: no deprovision job"
        if dep.state in TERMINAL_STATES and not dep.block_deletion_on_failure:
            if not dep.id:
                return "BAD: released after a refused deprovision launch"
            return "failed-non-blocking"
        return f"BAD: deprovision {dep.state} block={dep.block_deletion_on_failure}"

    def _aap_success_reason(self, job_id: str) -> str:
        """AAP: a success is the backend's verdict or the job's playbook's own last mark, and
        either way no VM may be left."""
        if self.vm_exists:
            return f"BAD: deprovision job {job_id} taken as succeeded with the VM still there"
        backend = self.backend.jobs.get(job_id)
        if backend is not None and backend.state is JobState.SUCCEEDED:
            return "succeeded"
        if job_id in self.marked:
            return "marked"
        state = backend.state if backend is not None else "unknown"
        return f"BAD: deprovision job {job_id} taken as succeeded; the backend says {state}"

    def delete(self) -> None:
        if self.stored is None or self.stored.deleting:
            return
        self.stored.metadata.deletion_timestamp = self.now
        self._maybe_gone()
        if self.stored is not None and not self.stored.metadata.finalizers:
            self.stored = None

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def abandoned_intents(self) -> list[str]:
        """Persisted launch intents replaced by another one without reaching the backend and
        without being closed in the status (a terminal state): each would be a launch the
        status claims was intended but that nobody will ever look up again."""
        intents: dict[str, int] = {}
        closed: set[str] = set()
        for i, status in enumerate(self.writes):
            for job in (status.provision_job, status.deprovision_job):
                if job is None or not job.correlation_id:
                    continue
                if not job.id and job.state not in TERMINAL_STATES:
                    intents.setdefault(job.correlation_id, i)
                else:
                    closed.add(job.correlation_id)
            for record in status.jobs:
                if record.correlation_id and (record.job_id or record.state in TERMINAL_STATES):
                    closed.add(record.correlation_id)
        launched = {cid for _, cid in self.backend.launches}
        current = set()
        if self.writes:
            last = self.writes[-1]
            current = {
                j.correlation_id
                for j in (last.provision_job, last.deprovision_job)
                if j is not None and j.correlation_id
            }
        return sorted(cid for cid in intents if cid not in launched | closed | current)

    def advance(self, *, seconds: float = 1.0, passes: int = 1) -> None:
        """Healthy progress: every active job moves one state, playbooks apply, then reconcile."""
        for _ in range(passes):
            if self.provider == "eda":
                self.eda_progress()
            else:
                for job in list(self.backend.active()):
                    self.backend.progress(job)
                self.settle_playbooks()
            self.tick(seconds)
            self.reconcile()

    def run_to_ready(self) -> None:
        """Provision completely (job successful, VM ready, annotation echoed)."""
        self.reconcile()
        for _ in range(10):
            self.vm_ready = self.vm_exists
            self.advance()
            if self.stored is not None and self.stored.status.phase == "Ready":
                return
        raise AssertionError(f"not Ready: {self.stored and self.stored.status}")

    def kubevirt_recreates_vmi(self) -> None:
        """KubeVirt starts a new VMI for a running VM whose VMI was deleted."""
        if self.vm_exists and self.vmi_created_at is None:
            self.vmi_created_at = self.now

    def _check_restart_record(self, new: ComputeInstanceStatus) -> None:
        """lastRestartedAt may name a request only once a VMI created after it exists."""
        assert self.stored is not None
        old = self.stored.status.last_restarted_at
        recorded = new.last_restarted_at
        if recorded is None or recorded == old:
            return
        # Simulated time may not move between steps: the same instant is "after" the request.
        if self.vmi_created_at is None or self.vmi_created_at < recorded:
            self.backend.violations.append(
                f"lastRestartedAt {recorded} recorded, VMI created {self.vmi_created_at}"
            )
