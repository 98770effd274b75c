"""One reconcile of one ComputeInstance: the loop of cloudkit.lifecycle.types, executed.

read → decide → write the status if it changed (resourceVersion precondition) → finalizer
patch → run the one I/O action → fold its outcome → decide again (bounded) → events → requeue.
A conflict re-reads the object and starts the pass over, keeping the outcomes already obtained
(an executed launch must never be forgotten, or it would be launched again).

Reads come from the watch cache (cache.py) when the shell feeds one: the instance on a hit,
the VMs once this process listed them fresh for the instance. Fresh GETs remain where a stale
read could do harm that no precondition catches: after a write conflict (the instance), before
a decision that removes the finalizer or deletes a VMI (`acts_on_reads`: the instance and the
VMs), and on a cache miss. Every other stale read is fenced: each write carries the read
resourceVersion, so it costs a Conflict and a fresh re-read, never a wrong write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from cloudkit.api.models import ComputeInstance, JobStatus
from cloudkit.lifecycle import decide
from cloudkit.lifecycle.types import (
    AddFinalizer,
    CancelJob,
    CancelOutcome,
    Decision,
    EventType,
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
from cloudkit.operator.kube import Conflict, Kube, KubeError
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.launch_slots import LaunchSlots
from cloudkit.operator.metrics import JobTracker, OperatorMetrics
from cloudkit.providers.base import Provider

log = logging.getLogger("cloudkit.operator")

MAX_STEPS = 12
"""decide() rounds in one pass; each executes at most one I/O action."""
MAX_CONFLICTS = 5
"""Re-reads after a write conflict before the pass gives up (and is retried with backoff)."""
INVALID_REASON = "InvalidSpec"


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
    jobs: JobTracker = field(init=False)
    passes: PassSchedule = field(init=False)
    _written: dict[InstanceKey, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.jobs = JobTracker(self.metrics, self.config.provider_name)
        self.passes = PassSchedule(self.config)
        self.reads = Reads(self.kube, self.cache)

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
        observation = Observation()
        events: dict[tuple[str, str, str], RecordEvent] = {}
        # Reads come from the watch cache, except after a write conflict (the instance is read
        # fresh) and before a decision that acts irreversibly on them (both are read fresh).
        fresh_instance = fresh_vms = not self.reads.caching
        reread_vms = False
        for _ in range(MAX_CONFLICTS + 1):  # + the one fresh re-read before acting
            raw = await self.reads.instance(key, fresh=fresh_instance)
            if raw is None:
                self._gone(key)
                return None
            instance = await self._parse(key, raw)
            if instance is None:
                return None
            if not observation.outcomes or reread_vms:
                vms = await self.reads.vms(key.name, fresh=fresh_vms)
                observation = replace(observation, vms=vms)
            try:
                fresh = fresh_instance and fresh_vms
                decision, raw = await self._steps(key, raw, instance, observation, events, fresh)
            except _StartOver as start_over:
                observation = start_over.observation
                fresh_instance = True
                if start_over.refresh:
                    fresh_vms = reread_vms = True
                log.info("%s: %s; re-reading", key, start_over)
                continue
            if raw is not None:
                await self._record(raw, events.values())
            if decision is None or decision.ignored:
                return None
            return decision.requeue_after
        raise RuntimeError(f"{key}: gave up after {MAX_CONFLICTS} write conflicts")

    async def _steps(
        self,
        key: InstanceKey,
        raw: dict[str, Any],
        instance: ComputeInstance,
        observation: Observation,
        events: dict[tuple[str, str, str], RecordEvent],
        fresh: bool,
    ) -> tuple[Decision | None, dict[str, Any] | None]:
        decision: Decision | None = None
        for _ in range(MAX_STEPS):
            # admit → decide → settle in one step of the loop: the slot is checked and taken
            # with no await between, so concurrent workers cannot over-commit.
            observation = self.slots.admit(key, observation)
            decision = decide(instance, observation, self.clock(), self.config)
            self.slots.settle(key, decision)
            if decision.ignored:
                return decision, None
            if not fresh and acts_on_reads(decision):
                raise _StartOver(observation, "acting on cached reads", refresh=True)
            for event in decision.events:
                events.setdefault((event.type, event.reason, event.message), event)
            if must_persist(decision, observation):
                persisted, instance = await self._persist(key, raw, instance, decision, observation)
                if persisted is None:  # our finalizer was the last one: the object is gone
                    self._gone(key)
                    # Its events are still recorded (on the last version seen): they are the
                    # only trace of how the deprovisioning ended.
                    return None, raw
                raw = persisted
            self._log(key, decision)
            if decision.io is None:
                return decision, raw
            outcome = await execute(self.provider, decision.io, raw, vms=self.kube)
            observation = observation.with_outcome(outcome)
        # Out of rounds with I/O still wanted: keep what was decided, and come back soon rather
        # than loop here for ever.
        log.warning("%s: %d decision rounds in one pass; requeueing", key, MAX_STEPS)
        if decision is not None:
            persisted, instance = await self._persist(key, raw, instance, decision, observation)
            if persisted is None:
                self._gone(key)
                return None, raw  # its events are still recorded, as above
            raw = persisted
        return Decision(status=instance.status, requeue_after=self.config.first_poll), raw

    async def _persist(
        self,
        key: InstanceKey,
        raw: dict[str, Any],
        instance: ComputeInstance,
        decision: Decision,
        observation: Observation,
    ) -> tuple[dict[str, Any] | None, ComputeInstance]:
        try:
            new_status = decision.status.to_wire()
            if new_status != instance.status.to_wire():
                written = await self.kube.replace_status(raw, new_status)
                if written is None:
                    return None, instance
                raw = written
                instance = ComputeInstance.model_validate(raw)
                self._wrote(key, raw)
                self.jobs.observe(str(key), instance.status)
            for action in decision.finalizers:
                patched = await self._apply_finalizer(raw, action)
                if patched is None:
                    return None, instance
                raw = patched
                instance = ComputeInstance.model_validate(raw)
                self._wrote(key, raw)
                if instance.deleting and not instance.metadata.finalizers:
                    return None, instance  # the last finalizer went: the server deleted it
        except Conflict as error:
            raise _StartOver(observation) from error
        return raw, instance

    async def _apply_finalizer(
        self, raw: dict[str, Any], action: AddFinalizer | RemoveFinalizer
    ) -> dict[str, Any] | None:
        finalizers = list(raw["metadata"].get("finalizers") or [])
        if isinstance(action, AddFinalizer):
            if action.name in finalizers:
                return raw
            finalizers.append(action.name)
        else:
            if action.name not in finalizers:
                return raw
            finalizers.remove(action.name)
        return await self.kube.set_finalizers(raw, finalizers)

    async def _parse(self, key: InstanceKey, raw: dict[str, Any]) -> ComputeInstance | None:
        """The typed instance, or None after reporting why it cannot be read (no crash)."""
        try:
            return ComputeInstance.model_validate(raw)
        except ValidationError as error:
            problem = _validation_summary(error)
        log.warning("%s: invalid ComputeInstance: %s", key, problem)
        status = dict(raw.get("status") or {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Accepted"]
        accepted = {
            "type": "Accepted",
            "status": "False",
            "reason": INVALID_REASON,
            "message": problem,
        }
        old: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Accepted"), {}
        )
        if old.get("reason") == INVALID_REASON and old.get("message") == problem:
            return None  # already reported
        accepted["lastTransitionTime"] = _timestamp(self.clock())
        status["conditions"] = [*conditions, accepted]
        try:
            written = await self.kube.replace_status(raw, status)
            if written is not None:
                self._wrote(key, written)
                event = RecordEvent(EventType.WARNING, INVALID_REASON, problem)
                await self._record(written, [event])
        except KubeError as error:
            log.warning("%s: could not report the invalid spec: %s", key, error)
        return None

    async def _record(self, raw: dict[str, Any], events: Any) -> None:
        for event in events:
            try:
                await self.kube.record_event(raw, event)
            except KubeError as error:
                log.warning("%s", error)

    def _wrote(self, key: InstanceKey, written: dict[str, Any]) -> None:
        self._written[key] = written["metadata"]["resourceVersion"]
        self.reads.wrote(written)

    def _gone(self, key: InstanceKey) -> None:
        self.reads.gone(key)
        self._written.pop(key, None)
        self.slots.forget(key)
        self.jobs.forget(str(key))
        self.passes.forget(key)

    def _log(self, key: InstanceKey, decision: Decision) -> None:
        status = decision.status
        io = type(decision.io).__name__ if decision.io is not None else "-"
        requeue = decision.requeue_after
        available = next((c.status for c in status.conditions if c.type == "Available"), "-")
        log.info(
            "%s: phase=%s available=%s provision=%s deprovision=%s io=%s requeue=%s",
            key,
            status.phase.value if status.phase else "-",
            available,
            _job_text(status.provision_job),
            _job_text(status.deprovision_job),
            io,
            f"{requeue.total_seconds():g}s" if requeue is not None else "-",
        )


@dataclass
class PassSchedule:
    """When a key runs next, after a pass that wanted `delay` and did (not) write the object.

    Under the baseline policy (`poll_every_pass`) as upstream's controller-runtime queue would
    run it (reference §3.1):
    - each write of its own causes one more pass at once (its watch sees its own writes);
    - a requeue-after is a timer that passes woken by events neither cancel nor postpone: per
      key the earliest pending timer fires (client-go's delaying queue keeps the earliest).
    Our own policy does neither: the watch events of its writes carry nothing new
    (`is_own_write`), and each pass's requeue replaces the one before. Times: monotonic seconds.
    """

    config: LifecycleConfig
    _timers: dict[InstanceKey, float] = field(default_factory=dict)

    def after_pass(
        self, key: InstanceKey, delay: timedelta | None, *, wrote: bool, now: float
    ) -> timedelta | None:
        if not self.config.poll_every_pass:
            return delay
        timer = self._timers.pop(key, None)
        if timer is not None and timer <= now:
            timer = None  # it fired: this is its pass
        if delay is not None:
            due = now + delay.total_seconds()
            timer = due if timer is None else min(timer, due)
        if timer is not None:
            self._timers[key] = timer
        if wrote:
            return timedelta(0)
        return None if timer is None else timedelta(seconds=timer - now)

    def forget(self, key: InstanceKey) -> None:
        self._timers.pop(key, None)


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


class _StartOver(Exception):
    """Start the pass over: the instance changed (a write conflict), or a decision needs fresh
    reads (`refresh`: the VMs are listed again too, keeping the outcomes already obtained)."""

    def __init__(
        self,
        observation: Observation,
        why: str = "changed while reconciling",
        *,
        refresh: bool = False,
    ) -> None:
        super().__init__(why)
        self.observation = observation
        self.refresh = refresh


def _job_text(job: JobStatus | None) -> str:
    if job is None:
        return "-"
    return f"{job.id or '(intent)'}:{job.state.value}"


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _validation_summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid object"
