"""The lifecycle core's vocabulary: what it observes, what it decides, how it is configured.

The contract with the operator shell (cloudkit.operator), which runs one reconcile as a loop:

    observation = Observation(vms=<VMs labelled with the instance>)
    repeat (bounded):
        decision = decide(instance, observation, now, config)
        1. if decision.status differs from the stored status: write it (status subresource,
           resourceVersion precondition; on conflict re-read the instance and start over);
        2. apply AddFinalizer / RemoveFinalizer (metadata patch);
        3. execute decision.io (at most one I/O action) and fold its outcome into the
           observation (`observation.with_outcome(...)`); if there is none, stop;
    record events; requeue after decision.requeue_after (None = only on changes).

Because the status is persisted before the I/O action runs, an intended launch is durable
before it happens (invariant 4), and a job reading reaches the status before anything that
depends on it (invariant 3). Everything here is plain data: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from cloudkit.api.jobs import JobReading, JobType, ProviderCapabilities
from cloudkit.api.models import ComputeInstanceStatus

# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    provider_name: str
    """"aap" or "eda": recorded nowhere but used in messages and events."""
    capabilities: ProviderCapabilities
    poll_interval: timedelta = timedelta(seconds=30)
    """Ceiling of the adaptive polling interval (CLOUDKIT_AAP_STATUS_POLL_INTERVAL)."""
    first_poll: timedelta = timedelta(milliseconds=500)
    """Delay of the first poll after a job starts or changes state."""
    max_job_history: int = 10
    retry_backoff_min: timedelta = timedelta(minutes=2)
    """First retry of a failed job after its launch; doubles up to retry_backoff_max."""
    retry_backoff_max: timedelta = timedelta(minutes=30)
    launch_lookup_grace: timedelta = timedelta(seconds=5)
    """An intent younger than this that a lookup did not find is looked up again, not relaunched."""
    poll_every_pass: bool = False
    """Upstream's policy (reference §3.1), kept as the benchmarks' baseline: every pass polls a
    running job, whatever woke it, and the next pass is due a full `poll_interval` later."""
    cancel_grace: timedelta = timedelta(seconds=30)
    """A canceled job still active after this is canceled again (AWX #10151)."""
    job_notifications: bool = False
    """Authenticated job notifications reach the shell, each a reading of its job
    (`Observation.notified`): timed polls are then only the net for a lost notification."""
    notified_first_poll: timedelta = timedelta(seconds=5)
    """With `job_notifications`, the first timed poll after a launch or a state change (instead
    of `first_poll`): what a lost notification costs at worst, beside the geometric back-off."""
    tenant_namespace_prefix: str = ""


# --- observation ------------------------------------------------------------------------------


class FailureKind(StrEnum):
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INVALID_RESPONSE = "invalid_response"


@dataclass(frozen=True, slots=True)
class Failure:
    """A provider error as the core sees it; `message` is safe to show (no secrets)."""

    kind: FailureKind
    message: str
    retryable: bool = True
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class VirtualMachineObservation:
    name: str
    namespace: str
    ready: bool
    printable_status: str = ""
    vmi_created_at: datetime | None = None
    """creationTimestamp of the VirtualMachineInstance named as the VM; None when it has none
    (halted, or deleted and not yet re-created)."""
    ip_address: str | None = None
    """The first IP address among the VirtualMachineInstance's `status.interfaces`, if any."""


@dataclass(frozen=True, slots=True)
class LaunchOutcome:
    """What happened to a LaunchProvision / LaunchDeprovision the shell executed."""

    job_type: JobType
    correlation_id: str
    reading: JobReading | None = None
    """The launched job (id, initial state, message); None on failure or skip."""
    failure: Failure | None = None
    skipped: bool = False
    """Deprovision only: the provider says there is nothing to deprovision (EDA)."""
    waiting: bool = False
    """Deprovision only: the provider refused to launch yet (safety net; reading = provision)."""
    block_deletion_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class PollOutcome:
    job_type: JobType
    job_id: str
    reading: JobReading | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    job_id: str
    accepted: bool = False
    """The backend accepted the cancel (AAP 202)."""
    already_terminal: bool = False
    """Nothing to cancel (AAP 405): poll the job to learn its final state."""
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    job_type: JobType
    correlation_id: str
    reading: JobReading | None = None
    """The job found by its correlation id, or None when no launch reached the backend."""
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """What deleting the VirtualMachineInstance (RestartVirtualMachine) did."""

    namespace: str
    name: str
    failure: Failure | None = None
    """The delete was refused or failed (not found is not a failure: see `missing`)."""
    missing: bool = False
    """There was no VirtualMachineInstance to delete (404)."""


Outcome = LaunchOutcome | PollOutcome | CancelOutcome | LookupOutcome | RestartOutcome


@dataclass(frozen=True, slots=True)
class Observation:
    """What the shell learned this pass, outside the instance itself."""

    vms: tuple[VirtualMachineObservation, ...] | None = None
    """VMs labelled with the instance; None when the shell could not list them."""
    outcomes: tuple[Outcome, ...] = ()
    """Results of the I/O actions executed so far in this pass, oldest first."""
    notified: tuple[JobReading, ...] = ()
    """Readings of jobs carried by authenticated job notifications (the shell keeps the latest
    of each job). Folded before the outcomes, and only where they move the current job of the
    same id forward (`jobs.moves_forward`): a late notification never undoes a newer reading."""
    launch_allowed: bool = True
    """May a new provisioning launch (a new intent) start now? False while the shell's limit
    of launches in flight is reached or others wait ahead; the shell wakes the instance when
    a slot frees. Deprovisioning and an intent already recorded never ask."""
    launches_in_flight: int = 0
    """Provisioning jobs in flight as the shell counts them (for the waiting message)."""
    launch_limit: int = 0
    """The limit (CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT) those are counted against; 0 = none."""

    def with_outcome(self, outcome: Outcome) -> Observation:
        return replace(self, outcomes=(*self.outcomes, outcome))


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddFinalizer:
    name: str


@dataclass(frozen=True, slots=True)
class RemoveFinalizer:
    name: str


@dataclass(frozen=True, slots=True)
class LaunchProvision:
    correlation_id: str


@dataclass(frozen=True, slots=True)
class LaunchDeprovision:
    correlation_id: str


@dataclass(frozen=True, slots=True)
class PollJob:
    job_type: JobType
    job_id: str


@dataclass(frozen=True, slots=True)
class CancelJob:
    job_id: str


@dataclass(frozen=True, slots=True)
class FindJob:
    job_type: JobType
    correlation_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class RestartVirtualMachine:
    """Delete the VM's VirtualMachineInstance (same name, same namespace); KubeVirt re-creates
    it for a running VM, which is what a restart is."""

    namespace: str
    name: str


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class RecordEvent:
    type: EventType
    reason: str
    message: str


IOAction = (
    LaunchProvision | LaunchDeprovision | PollJob | CancelJob | FindJob | RestartVirtualMachine
)
MetadataAction = AddFinalizer | RemoveFinalizer


@dataclass(frozen=True, slots=True)
class Decision:
    status: ComputeInstanceStatus
    """The complete new status (the shell writes it only if it changed)."""
    finalizers: tuple[MetadataAction, ...] = ()
    io: IOAction | None = None
    """At most one I/O action; its outcome is fed back into the next decide() of this pass."""
    events: tuple[RecordEvent, ...] = ()
    requeue_after: timedelta | None = None
    """When to reconcile again if nothing else wakes the instance; None = only on changes."""
    ignored: bool = False
    """Unmanaged instance: the shell must not write anything."""


__all__ = [
    "AddFinalizer",
    "CancelJob",
    "CancelOutcome",
    "Decision",
    "EventType",
    "Failure",
    "FailureKind",
    "FindJob",
    "IOAction",
    "LaunchDeprovision",
    "LaunchOutcome",
    "LaunchProvision",
    "LifecycleConfig",
    "LookupOutcome",
    "MetadataAction",
    "Observation",
    "Outcome",
    "PollJob",
    "PollOutcome",
    "RecordEvent",
    "RemoveFinalizer",
    "RestartOutcome",
    "RestartVirtualMachine",
    "VirtualMachineObservation",
]
