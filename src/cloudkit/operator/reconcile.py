"""One reconcile pass of one ComputeInstance: read → decide → write → act, on one screen.

`_pass` reads the instance and its VMs (from the watch cache, or fresh where `Freshness` says),
then `_converge` runs rounds of decide → write the status if it changed (resourceVersion
precondition) and the finalizers → run the one I/O action → fold its outcome, until a decision
wants no more I/O (bounded); the pass then records its events and says when to come back. A
round ends the pass early as a value (`Converged`), never an exception: the instance changed
under a write (re-read it), or a decision must be taken on fresh reads (re-read it and its
VMs); either way the outcomes already obtained are kept (an executed launch must never be
forgotten, or it would be launched again). Launch slots are an input of each decision and
what it holds is settled right after it (launch_slots.py).

Reads come from the watch cache (cache.py) when the shell feeds one: the instance on a hit,
the VMs once the watches listed every VM and VMI (or this process listed the instance's fresh).
Fresh GETs remain where a stale read could do harm that no precondition catches: after a write
conflict (the instance), before a decision that removes the finalizer or deletes a VMI
(`acts_on_reads`: the instance and the VMs), and on a cache miss. Every other stale read is
fenced: each write carries the read resourceVersion, so it costs a Conflict and a fresh
re-read, never a wrong write. When the key
runs next is pass_schedule.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import ValidationError

from cloudkit.api import names
from cloudkit.api.jobs import JobReading
from cloudkit.api.models import ComputeInstance, JobStatus
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.jobs import moves_forward
from cloudkit.lifecycle.types import (
    AddFinalizer,
    CancelJob,
    CancelOutcome,
    Decision,
    LaunchDeprovision,
    LaunchOutcome,
    LaunchProvision,
    LifecycleConfig,
    LookupOutcome,
    Observation,
    RecordEvent,
    RemoveFinalizer,
    RestartOutcome,
    RestartVirtualMachine,
)
from cloudkit.operator.actions import execute
from cloudkit.operator.cache import Reads, WatchCache
from cloudkit.operator.invalid_spec import rejected_event, rejected_status, validation_summary
from cloudkit.operator.kube import Conflict, Kube, KubeError
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.launch_slots import LaunchSlots
from cloudkit.operator.metrics import JobTracker, OperatorMetrics
from cloudkit.operator.notified_readings import NotifiedReadings
from cloudkit.operator.pass_schedule import PassSchedule
from cloudkit.providers.base import Provider

log = logging.getLogger("cloudkit.operator")

MAX_STEPS = 12
"""decide() rounds in one pass; each executes at most one I/O action."""
MAX_CONFLICTS = 5
"""Re-reads after a write conflict before the pass gives up (and is retried with backoff)."""

Events = dict[tuple[str, str, str], RecordEvent]
"""A pass's events, each once (by type, reason and message), in the order first decided."""


class End(Enum):
    """How a pass's rounds ended."""

    SETTLED = "settled"
    """A decision wants no more I/O (or the rounds ran out): it stands, with its requeue."""
    IGNORED = "ignored"
    """The core ignores the instance: nothing to write or record."""
    GONE = "gone"
    """Our finalizer was the last one: the object is gone."""
    CHANGED = "changed while reconciling"
    """A write conflict: read the instance again."""
    STALE = "acting on cached reads"
    """A decision `acts_on_reads`: read the instance and its VMs again, fresh."""

    @property
    def starts_over(self) -> bool:
        return self in (End.CHANGED, End.STALE)


@dataclass(frozen=True)
class Freshness:
    """Which reads of a pass go to the API server instead of the watch cache."""

    instance: bool
    vms: bool
    relist_vms: bool = False
    """List the VMs again although the pass has outcomes (else a re-read keeps the VMs the
    outcomes were obtained on)."""

    @classmethod
    def first(cls, *, caching: bool) -> Freshness:
        return cls(instance=not caching, vms=not caching)

    @property
    def complete(self) -> bool:
        """The instance and its VMs both come from the API server: fit for `acts_on_reads`."""
        return self.instance and self.vms

    def after(self, end: End) -> Freshness:
        """What the re-read after `end` (CHANGED or STALE) reads fresh."""
        if end is End.STALE:
            return Freshness(instance=True, vms=True, relist_vms=True)
        return replace(self, instance=True)


@dataclass(frozen=True)
class Snapshot:
    """The instance as last read or written: the object (its resourceVersion guards the next
    write; events are recorded on it) and its model."""

    raw: dict[str, Any]
    instance: ComputeInstance


@dataclass
class InstanceModels:
    """The model of each instance's last version validated: a pass usually reads (from the
    cache) the version the last pass wrote, and validating a whole instance was a tenth of a
    write's CPU at scale. One version of an object is one content on the server, and nothing
    edits a model (decide copies the status it changes), so sharing it is safe."""

    _last: dict[InstanceKey, tuple[str, ComputeInstance]] = field(default_factory=dict)

    def of(self, key: InstanceKey, raw: dict[str, Any]) -> ComputeInstance:
        """`raw` validated, or the model of the same version validated before."""
        version = (raw.get("metadata") or {}).get("resourceVersion")
        known = self._last.get(key)
        if known is not None and version and known[0] == version:
            return known[1]
        model = ComputeInstance.model_validate(raw)
        if version:
            self._last[key] = (version, model)
        return model

    def last(self, key: InstanceKey) -> ComputeInstance | None:
        """The model of the last version validated (read or written), if any."""
        known = self._last.get(key)
        return None if known is None else known[1]

    def forget(self, key: InstanceKey) -> None:
        self._last.pop(key, None)


@dataclass(frozen=True)
class Converged:
    """The end of a pass's rounds, and what the pass does with it."""

    end: End
    observation: Observation
    """Every outcome obtained so far: kept when the pass starts over."""
    last_seen: dict[str, Any] | None = None
    """The version the pass's events are recorded on (None: no events are recorded)."""
    requeue_after: timedelta | None = None
    decision: Decision | None = None
    """The decision the pass ends on, for its log line (None: nothing to say)."""


@dataclass
class Reconciler:
    kube: Kube
    provider: Provider
    config: LifecycleConfig
    metrics: OperatorMetrics
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    cache: WatchCache | None = None
    """Fed by the shell's watches; None: every read is a fresh GET (nothing feeds a cache)."""
    reads: Reads = field(init=False)
    slots: LaunchSlots = field(default_factory=LaunchSlots)
    """Provisioning launches in flight and the instances waiting for one (no limit here)."""
    notified: NotifiedReadings = field(default_factory=NotifiedReadings)
    """Job readings from authenticated notifications, folded by each pass (before its polls)."""
    jobs: JobTracker = field(init=False)
    passes: PassSchedule = field(init=False)
    _written: dict[InstanceKey, str] = field(default_factory=dict, init=False)
    _models: InstanceModels = field(default_factory=lambda: InstanceModels(), init=False)
    feedback: bool = False
    """The feedback is on: an ordered instance (uuid label) gets the feedback's finalizer in
    the same write as this operator's, before any job is launched. Added later, by the feedback
    alone, it lands while the provision job adds its own (a guarded patch that fails on any
    change in between, with one retry): seen failing three jobs in ten under load."""

    def __post_init__(self) -> None:
        self.jobs = JobTracker(self.metrics, self.config.provider_name)
        self.passes = PassSchedule(self.config)
        self.reads = Reads(self.kube, self.cache)

    def heard(self, key: InstanceKey, reading: JobReading) -> bool:
        """Keep a notification's job reading for the next pass of `key`; whether that pass may
        learn anything from it. Not when the last version this process read or wrote already
        records the job that far (a job's launch state announced again, a late notification):
        a pass would change nothing, and it was a tenth of the passes at scale. That version is
        never ahead of the server, so a reading it does not know of always wakes the key."""
        self.notified.heard(key, reading)
        known = self._models.last(key)
        if known is None:
            return True
        for job in (known.status.provision_job, known.status.deprovision_job):
            if job is not None and job.id and job.id == reading.job_id:
                return moves_forward(job, reading)
        return True

    def is_own_write(self, key: InstanceKey, resource_version: str | None) -> bool:
        """True for the watch event of a write this operator just made (no new information)."""
        return resource_version is not None and self._written.get(key) == resource_version

    async def __call__(self, key: InstanceKey) -> float | None:
        """Reconcile `key`; the seconds until it wants to run again (None = on changes only)."""
        started = time.monotonic()
        try:
            delay = await self.reconcile(key)
        except Exception:
            self.metrics.reconcile_errors.inc()
            raise
        finally:
            self.metrics.reconcile_duration.observe(time.monotonic() - started)
        return None if delay is None else delay.total_seconds()

    async def reconcile(self, key: InstanceKey) -> timedelta | None:
        """One pass; the delay until the next (None = on changes only)."""
        before = self._written.get(key)
        self.slots.pass_started(key)
        try:
            delay = await self._pass(key)
        finally:
            # Also after a failed pass: a key that decided nothing must not hold the line
            # (the keys behind it) through its error backoff.
            self.slots.pass_ended(key)
        wrote = self._written.get(key) not in (None, before)
        return self.passes.after_pass(key, delay, wrote=wrote, now=time.monotonic())

    async def _pass(self, key: InstanceKey) -> timedelta | None:
        observation, events, ran = Observation(), Events(), list[str]()
        written_before = self._written.get(key)
        fresh = Freshness.first(caching=self.reads.caching)
        for _ in range(MAX_CONFLICTS + 1):  # + the one fresh re-read before acting
            snapshot = await self._read_instance(key, fresh)
            if snapshot is None:
                return None  # gone, or a spec that does not parse (reported)
            observation = replace(observation, notified=self.notified.of(key))
            if fresh.relist_vms or not observation.outcomes:
                observation = replace(
                    observation, vms=await self.reads.vms(key.name, fresh=fresh.vms)
                )
            converged = await self._converge(
                key, snapshot, observation, events, ran, fresh.complete
            )
            if converged.decision is not None:
                acted = bool(ran or events) or self._written.get(key) != written_before
                self._log(key, converged.decision, ran, acted=acted)
            if converged.end.starts_over:
                log.info("%s: %s; re-reading", key, converged.end.value)
                observation, fresh = converged.observation, fresh.after(converged.end)
                continue
            if converged.last_seen is not None:
                await self._record(converged.last_seen, events.values())
            return converged.requeue_after
        raise RuntimeError(f"{key}: gave up after {MAX_CONFLICTS} write conflicts")

    async def _converge(
        self,
        key: InstanceKey,
        snapshot: Snapshot,
        observation: Observation,
        events: Events,
        ran: list[str],
        fresh: bool,
    ) -> Converged:
        """Rounds of decide → write → act until a decision wants no more I/O (or MAX_STEPS);
        the I/O run is added to `ran`."""
        for _ in range(MAX_STEPS):
            # The launch slot is an input of the decision, and what the decision holds is
            # settled with no await in between: concurrent workers cannot over-commit.
            observation = self.slots.admit(key, observation)
            decision = decide(snapshot.instance, observation, self.clock(), self.config)
            self.slots.settle(key, decision)
            if decision.ignored:
                return Converged(End.IGNORED, observation)
            if not fresh and acts_on_reads(decision):
                return Converged(End.STALE, observation)
            for event in decision.events:
                events.setdefault((event.type, event.reason, event.message), event)
            if must_persist(decision, observation):
                written = await self._write(key, snapshot, decision)
                if isinstance(written, End):
                    return self._cut_short(key, written, observation, snapshot, decision)
                snapshot = written
            if decision.io is None:
                return Converged(
                    End.SETTLED, observation, snapshot.raw, decision.requeue_after, decision
                )
            outcome = await execute(self.provider, decision.io, snapshot.raw, vms=self.kube)
            ran.append(type(decision.io).__name__)
            observation = observation.with_outcome(outcome)
        # Out of rounds with I/O still wanted: keep what was decided, and come back soon rather
        # than loop here for ever.
        log.warning("%s: %d decision rounds in one pass; requeueing", key, MAX_STEPS)
        written = await self._write(key, snapshot, decision)
        if isinstance(written, End):
            return self._cut_short(key, written, observation, snapshot, decision)
        return Converged(End.SETTLED, observation, written.raw, self.config.first_poll, decision)

    def _cut_short(
        self,
        key: InstanceKey,
        end: End,
        observation: Observation,
        last_seen: Snapshot,
        decision: Decision,
    ) -> Converged:
        """A write found the object gone (its events are still recorded, on the last version
        seen: they are the only trace of how the deprovisioning ended) or changed."""
        if end is End.GONE:
            self._gone(key)
            return Converged(End.GONE, observation, last_seen.raw, decision=decision)
        return Converged(end, observation)

    async def _read_instance(self, key: InstanceKey, fresh: Freshness) -> Snapshot | None:
        """The instance, typed; None when it is gone or its spec does not parse (reported)."""
        raw = await self.reads.instance(key, fresh=fresh.instance)
        if raw is None:
            self._gone(key)
            return None
        try:
            return Snapshot(raw, self._models.of(key, raw))
        except ValidationError as error:
            await self._report_invalid(key, raw, validation_summary(error))
            return None

    async def _write(
        self, key: InstanceKey, snapshot: Snapshot, decision: Decision
    ) -> Snapshot | End:
        """The decision's status (if it changed) and finalizers, each write guarded by the
        version read: the object as written, End.GONE (the last finalizer went) or End.CHANGED
        (a conflict: the object changed since it was read)."""
        try:
            new_status = decision.status.to_wire()
            if new_status != snapshot.instance.status.to_wire():
                written = await self.kube.replace_status(snapshot.raw, new_status)
                if written is None:
                    return End.GONE
                snapshot = self._wrote(key, written)
                self.jobs.observe(str(key), snapshot.instance.status)
            for action in decision.finalizers:
                patched = await self._apply_finalizer(snapshot.raw, action)
                if patched is None:
                    return End.GONE
                snapshot = self._wrote(key, patched)
                if snapshot.instance.deleting and not snapshot.instance.metadata.finalizers:
                    return End.GONE  # the last finalizer went: the server deleted it
        except Conflict:
            return End.CHANGED
        return snapshot

    async def _apply_finalizer(
        self, raw: dict[str, Any], action: AddFinalizer | RemoveFinalizer
    ) -> dict[str, Any] | None:
        finalizers = list(raw["metadata"].get("finalizers") or [])
        if isinstance(action, AddFinalizer):
            if action.name in finalizers:
                return raw
            finalizers.append(action.name)
            labels = raw["metadata"].get("labels") or {}
            ordered = self.feedback and names.INSTANCE_UUID_LABEL in labels
            if ordered and names.FEEDBACK_FINALIZER not in finalizers:
                finalizers.append(names.FEEDBACK_FINALIZER)
        else:
            if action.name not in finalizers:
                return raw
            finalizers.remove(action.name)
        return await self.kube.set_finalizers(raw, finalizers)

    async def _report_invalid(self, key: InstanceKey, raw: dict[str, Any], problem: str) -> None:
        """Say in the status (Accepted False) and an event why the instance cannot be read,
        once per problem; never a crash of the pass."""
        log.warning("%s: invalid ComputeInstance: %s", key, problem)
        status = rejected_status(raw, problem, self.clock())
        if status is None:
            return  # already reported
        try:
            written = await self.kube.replace_status(raw, status)
            if written is not None:
                self._remember(key, written)
                await self._record(written, [rejected_event(problem)])
        except KubeError as error:
            log.warning("%s: could not report the invalid spec: %s", key, error)

    async def _record(self, raw: dict[str, Any], events: Iterable[RecordEvent]) -> None:
        for event in events:
            try:
                await self.kube.record_event(raw, event)
            except KubeError as error:
                log.warning("%s", error)

    def _wrote(self, key: InstanceKey, written: dict[str, Any]) -> Snapshot:
        snapshot = Snapshot(written, self._models.of(key, written))
        self._remember(key, written)
        return snapshot

    def _remember(self, key: InstanceKey, written: dict[str, Any]) -> None:
        """A write of ours: its watch event is no news, and the cache has it at once."""
        self._written[key] = written["metadata"]["resourceVersion"]
        self.reads.wrote(written)

    def _gone(self, key: InstanceKey) -> None:
        self.reads.gone(key)
        self._written.pop(key, None)
        self._models.forget(key)
        self.slots.forget(key)
        self.notified.forget(key)
        self.jobs.forget(str(key))
        self.passes.forget(key)

    def _log(self, key: InstanceKey, decision: Decision, ran: list[str], *, acted: bool) -> None:
        """One line per pass (a line per decision was ~8% of the operator's CPU at scale):
        the status it ends on, the I/O it ran in order, and when it comes back. At INFO only
        for a pass that `acted` (ran I/O, wrote, or recorded an event): a pass that changed
        nothing ends on the state the last line said, and such passes were nearly half of
        them at scale (each line a write to stderr, ~8% of the loop); DEBUG shows them."""
        level = logging.INFO if acted else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        status = decision.status
        io = ",".join(ran) or "-"
        requeue = decision.requeue_after
        available = next((c.status for c in status.conditions if c.type == "Available"), "-")
        log.log(
            level,
            "%s: phase=%s available=%s provision=%s deprovision=%s io=%s requeue=%s",
            key,
            status.phase.value if status.phase else "-",
            available,
            _job_text(status.provision_job),
            _job_text(status.deprovision_job),
            io,
            f"{requeue.total_seconds():g}s" if requeue is not None else "-",
        )


_FENCED_ACTIONS = (LaunchProvision, LaunchDeprovision, CancelJob, RestartVirtualMachine)
"""I/O that acts on the world: the status that asks for it is written first (the intent with
its correlation id, invariant 4), and the status that records its outcome right after."""
_FENCED_OUTCOMES = (LaunchOutcome, LookupOutcome, CancelOutcome, RestartOutcome)


def must_persist(decision: Decision, observation: Observation) -> bool:
    """Whether this decision's status and finalizers are written before its I/O runs.

    A decision whose only I/O is a read of the backend (poll a job, find a launched job) need not
    be written first: the next decision of the pass is a function of the same instance and of
    every outcome so far, so it contains this one's changes, and one write carries both (a VM
    change and the job's new state; the reconciled version and Ready). A pass that ends (no
    I/O), any finalizer change, and the decisions before and after I/O that acts are written at
    once, as before.
    """
    if decision.io is None or decision.finalizers:
        return True
    if isinstance(decision.io, _FENCED_ACTIONS):
        return True
    return bool(observation.outcomes) and isinstance(observation.outcomes[-1], _FENCED_OUTCOMES)


def acts_on_reads(decision: Decision) -> bool:
    """Whether this decision does what no resourceVersion precondition fences and a stale read
    could make wrong, so it is taken on fresh reads only: the finalizer's removal (invariant 5:
    nothing may be left behind) and a VMI's deletion (a restart)."""
    if any(isinstance(action, RemoveFinalizer) for action in decision.finalizers):
        return True
    return isinstance(decision.io, RestartVirtualMachine)


def _job_text(job: JobStatus | None) -> str:
    if job is None:
        return "-"
    return f"{job.id or '(intent)'}:{job.state.value}"
