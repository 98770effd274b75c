"""Launch slots: which instances hold one of the provisioning launches in flight
(CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT), which wait for one, first come first served, and whom to wake
when one frees.

Holding is read from the statuses the reconciler reads and decides, never from provider calls:
an instance whose `status.provisionJob` is an intent or a job not yet terminal holds a slot; a
terminal job, no job, or the instance gone releases it. The reconciler asks `admit` right
before each decide() and calls `settle` right after it, with no await in between, so the check
and the take are one step of the event loop: concurrent workers cannot over-commit.

Deprovisioning is never counted nor held back: cleanup must not wait behind provisioning (a
deletion of a waiting instance has no provision job, so it runs at once). A provision job that
a deletion is canceling still holds its slot until it is terminal: it still runs in AAP.

The limit applies to AAP direct only. An EDA provisioning job ends, as far as the operator can
tell, when its playbook writes the reconciled version back; a failed playbook never says so,
and its slot would never free. EDA launches are paced by CLOUDKIT_MINIMUM_REQUEST_INTERVAL.

Failover: a new leader starts with no holders and learns them as it reconciles each instance.
Instances in flight are queued NORMAL and new or waiting ones LOW (routing.instance_priority),
so the holders are read first; until they all are, some LOW keys (the workers busy at that
moment, and the one take in four that LOW gets while NORMAL keys are due, workqueue.LOW_TURN)
may be admitted against a count that is still too low, and the bound can be exceeded by that
many for the length of their jobs. The next launches wait until the count is
back under the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import islice

from cloudkit.api.models import ComputeInstanceStatus, ConditionType
from cloudkit.lifecycle import jobs
from cloudkit.lifecycle.provision import WAITING_FOR_LAUNCH_SLOT
from cloudkit.lifecycle.types import Decision, Observation
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.settings import OperatorSettings


def holds_slot(status: ComputeInstanceStatus) -> bool:
    """A provision intent or a provision job not yet terminal holds a launch slot."""
    job = status.provision_job
    return job is not None and not jobs.is_finished(job)


def waits_for_slot(status: ComputeInstanceStatus) -> bool:
    """The core said this instance waits for a slot (its Progressing reason)."""
    return any(
        c.type == ConditionType.PROGRESSING and c.reason == WAITING_FOR_LAUNCH_SLOT
        for c in status.conditions
    )


class LaunchSlots:
    def __init__(self, limit: int = 0, *, metrics: OperatorMetrics | None = None) -> None:
        self.limit = limit
        """0 = no limit (holders are still counted, for the metric)."""
        self._metrics = metrics
        self._holders: set[InstanceKey] = set()
        self._waiting: dict[InstanceKey, None] = {}
        """Keys told to wait, in the order they were first told (a dict keeps it)."""
        self._settled: set[InstanceKey] = set()
        """Keys settled by a decide() of the pass in progress."""
        self._wake: Callable[[InstanceKey], None] = lambda key: None
        self._publish()

    @classmethod
    def configured(cls, settings: OperatorSettings, metrics: OperatorMetrics) -> LaunchSlots:
        """The limit of the settings, for AAP direct (see the module's note on EDA)."""
        limit = settings.max_launches_in_flight if settings.provider == "aap" else 0
        return cls(limit, metrics=metrics)

    def wake_with(self, wake: Callable[[InstanceKey], None]) -> None:
        """How to reconcile a waiting key again (the work queue's add)."""
        self._wake = wake

    # --- introspection (tests, metrics) -------------------------------------------------------

    @property
    def holders(self) -> frozenset[InstanceKey]:
        return frozenset(self._holders)

    @property
    def waiting(self) -> tuple[InstanceKey, ...]:
        return tuple(self._waiting)

    # --- the reconciler's calls ---------------------------------------------------------------

    def admit(self, key: InstanceKey, observation: Observation) -> Observation:
        """The observation for `key`'s next decide(): may a new provisioning launch start?"""
        if self.limit == 0 or key in self._holders:
            return observation
        return replace(
            observation,
            launch_allowed=self._admits(key),
            launches_in_flight=len(self._holders),
            launch_limit=self.limit,
        )

    def settle(self, key: InstanceKey, decision: Decision) -> None:
        """After a decide(): hold (an intent or a running job), wait, or release."""
        self._settled.add(key)
        status = decision.status
        if holds_slot(status):
            self._holders.add(key)
            self._waiting.pop(key, None)
            self._publish()
            return
        released = key in self._holders
        self._holders.discard(key)
        if not decision.ignored and waits_for_slot(status):
            self._waiting.setdefault(key, None)
            left = False
        else:
            left = self._leave_line(key)
        if released or left:
            self._wake_admitted()
        self._publish()

    def pass_started(self, key: InstanceKey) -> None:
        self._settled.discard(key)

    def pass_ended(self, key: InstanceKey) -> None:
        """A pass that decided nothing (unreadable spec, instance gone) no longer waits: it
        must not keep the keys behind it waiting for ever."""
        if key not in self._settled and self._leave_line(key):
            self._wake_admitted()
            self._publish()
        self._settled.discard(key)

    def forget(self, key: InstanceKey) -> None:
        """The instance is gone: its slot and its place in line go."""
        self._settled.discard(key)
        held = key in self._holders
        self._holders.discard(key)
        if self._leave_line(key) or held:
            self._wake_admitted()
        self._publish()

    # --- first come, first served -------------------------------------------------------------

    def _leave_line(self, key: InstanceKey) -> bool:
        """Take `key` out of the line; whether it was in it."""
        if key not in self._waiting:
            return False
        del self._waiting[key]
        return True

    def _free(self) -> int:
        return max(0, self.limit - len(self._holders))

    def _admits(self, key: InstanceKey) -> bool:
        """A free slot for `key`: it is among the first waiting keys there are slots for, or
        nobody waits ahead of it and a slot is left."""
        free = self._free()
        if free == 0:
            return False
        if key in self._waiting:
            return key in islice(self._waiting, free)
        return len(self._waiting) < free

    def _wake_admitted(self) -> None:
        if self.limit == 0:
            return
        for key in list(islice(self._waiting, self._free())):
            self._wake(key)

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.launch_slots_in_use.set(len(self._holders))
            self._metrics.launches_waiting.set(len(self._waiting))
