"""The operator's feedback, decided: a ComputeInstance's status → its fulfillment record's, pure.

`decide(resource, record, now)` answers the status update that makes the record (the tenant's
view, `cloudkit.fulfillment`) say what the resource says, or None when it says so already. No
I/O, no clock (`now` is passed in); the shell that reads and writes is `feedback_sync`.

The mapping (the table is in docs/fulfillment.md, "The operator's feedback"):
- state: a deleted resource (any phase) → `DELETING`; else phase `Progressing` → `STARTING`,
  `Ready` → `RUNNING`, `Failed` → `FAILED`, `Deleting` → `DELETING`; no phase yet → the
  record's state is left as it is (the controller's `STARTING`);
- `READY` ← the `Available` condition;
- `PROVISIONED`: TRUE in phase `Ready`, else FALSE, with the `Progressing` condition's reason
  and message (so a failed job's AAP message reaches the tenant); while deleting FALSE, reason
  `Deprovisioning` (the deprovision job's state and message), and `Deprovisioned` once the
  resource is released (only the feedback finalizer left: its final state);
- `CONFIGURATION_APPLIED`: TRUE when `reconciledConfigVersion` == `desiredConfigVersion`;
- `RESTART_IN_PROGRESS`, `RESTART_FAILED` ← the conditions of those names (absent: FALSE);
- `internal_ip_address` ← `ipAddress`, `last_restarted_at` ← `lastRestartedAt`.

Condition statuses True/False/Unknown become `CONDITION_STATUS_TRUE`/`_FALSE`/`_UNSPECIFIED`.
A condition's `last_transition_time` moves only when its status changes, `state_transition_time`
only when the state does. The record's other fields (`RESTART_REQUIRED`, `hub`,
`external_ip_address`, …) are not the feedback's and are never written.

A record the service's controller marked FAILED (PROVISIONED reason `ReconciliationFailed`) is
the controller's until it takes it back (`held_by_controller`): the feedback does not overwrite
it, or the two would undo each other's write for ever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudkit.api import names
from cloudkit.api.models import (
    ComputeInstanceStatus,
    Condition,
    ConditionType,
    JobStatus,
    ObjectMeta,
    Phase,
)
from cloudkit.fulfillment.controller.decision import FAILURE_REASON as CONTROLLER_FAILURE
from cloudkit.fulfillment.models import (
    ComputeInstanceConditionType as RecordCondition,
)
from cloudkit.fulfillment.models import (
    ComputeInstanceState as State,
)
from cloudkit.fulfillment.models import (
    ConditionStatus,
)

Object = dict[str, Any]

FINALIZER = names.FEEDBACK_FINALIZER

OWNED_FIELDS = (
    "state",
    "conditions",
    "internal_ip_address",
    "last_restarted_at",
    "state_transition_time",
)
"""The record status fields the feedback writes; the update's mask names exactly these."""
UPDATE_MASK = tuple(f"status.{name}" for name in OWNED_FIELDS)

STATES: Mapping[Phase, State] = {
    Phase.PROGRESSING: State.STARTING,
    Phase.READY: State.RUNNING,
    Phase.FAILED: State.FAILED,
    Phase.DELETING: State.DELETING,
}

CONDITION_STATUS: Mapping[str, ConditionStatus] = {
    "True": ConditionStatus.TRUE,
    "False": ConditionStatus.FALSE,
    "Unknown": ConditionStatus.UNSPECIFIED,
}

RELEASED_REASON = "Deprovisioned"
DEPROVISIONING_REASON = "Deprovisioning"
APPLIED_REASON = "ConfigurationApplied"
NOT_APPLIED_REASON = "ConfigurationPending"


class Resource(BaseModel):
    """What the feedback reads of a ComputeInstance: metadata and status (the spec is not its
    business, so an instance whose spec does not validate still reports its status)."""

    model_config = ConfigDict(extra="ignore")

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    status: ComputeInstanceStatus = Field(default_factory=ComputeInstanceStatus)

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> Resource:
        """The resource; a status this operator cannot read counts as no status yet."""
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return cls(metadata=ObjectMeta.model_validate(raw.get("metadata") or {}))

    @property
    def record_id(self) -> str | None:
        return self.metadata.labels.get(names.INSTANCE_UUID_LABEL) or None

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    @property
    def released(self) -> bool:
        """Deleted, and nothing holds it but the feedback: its resources are gone, this is
        the last status it will ever have."""
        return self.deleting and set(self.metadata.finalizers) <= {FINALIZER}


@dataclass(frozen=True)
class StatusUpdate:
    """The record's new values of OWNED_FIELDS (a field absent here is cleared)."""

    status: Object

    def body(self, version: int | None) -> Object:
        """The PATCH body: the values, and the version it was decided on (for `lock`)."""
        return {"metadata": {"version": version}, "status": dict(self.status)}


def decide(resource: Resource, record: Mapping[str, Any], now: datetime) -> StatusUpdate | None:
    """The update that makes `record` report `resource`, or None if nothing would change."""
    if not resource.deleting and held_by_controller(record):
        return None
    current = _owned(record.get("status") or {})
    wanted: Object = {}
    state = desired_state(resource)
    old_state = current.get("state")
    if state is None:
        _put(wanted, "state", old_state)
        _put(wanted, "state_transition_time", current.get("state_transition_time"))
    else:
        _put(wanted, "state", state.value)
        changed = state.value != old_state
        moved = _time(now) if changed else current.get("state_transition_time")
        _put(wanted, "state_transition_time", moved)
    wanted["conditions"] = _conditions(current.get("conditions") or [], resource, now)
    _put(wanted, "internal_ip_address", resource.status.ip_address)
    restarted = resource.status.last_restarted_at
    _put(wanted, "last_restarted_at", _time(restarted) if restarted is not None else None)
    if _canonical(wanted) == _canonical(current):
        return None
    return StatusUpdate(wanted)


def held_by_controller(record: Mapping[str, Any]) -> bool:
    """The service's controller marked the record FAILED (it cannot reconcile it): its state
    and conditions are the controller's until the controller takes them back."""
    status = record.get("status") or {}
    if status.get("state") != State.FAILED:
        return False
    provisioned = _record_condition(status.get("conditions") or [], RecordCondition.PROVISIONED)
    return provisioned is not None and provisioned.get("reason") == CONTROLLER_FAILURE


def desired_state(resource: Resource) -> State | None:
    """The record's state for this resource; None: the resource says nothing yet."""
    if resource.deleting:
        return State.DELETING
    phase = resource.status.phase
    return None if phase is None else STATES[phase]


@dataclass(frozen=True)
class _Wanted:
    status: ConditionStatus
    reason: str = ""
    message: str = ""


def desired_conditions(resource: Resource) -> dict[RecordCondition, _Wanted]:
    """The record conditions the feedback owns, from the resource's status."""
    status = resource.status
    applied = bool(status.desired_config_version) and (
        status.reconciled_config_version == status.desired_config_version
    )
    return {
        RecordCondition.READY: _copied(_condition(status, ConditionType.AVAILABLE)),
        RecordCondition.PROVISIONED: _provisioned(resource),
        RecordCondition.CONFIGURATION_APPLIED: (
            _Wanted(
                ConditionStatus.TRUE,
                APPLIED_REASON,
                f"Configuration {status.desired_config_version} applied",
            )
            if applied
            else _Wanted(ConditionStatus.FALSE, NOT_APPLIED_REASON, _pending(status))
        ),
        RecordCondition.RESTART_IN_PROGRESS: _copied(
            _condition(status, ConditionType.RESTART_IN_PROGRESS)
        ),
        RecordCondition.RESTART_FAILED: _copied(_condition(status, ConditionType.RESTART_FAILED)),
    }


def _provisioned(resource: Resource) -> _Wanted:
    status = resource.status
    if resource.deleting:
        job = status.deprovision_job
        if resource.released:
            message = _job_text("Deprovisioning", job) or "The instance's resources are released"
            return _Wanted(ConditionStatus.FALSE, RELEASED_REASON, message)
        message = _job_text("Deprovisioning", job) or "Deprovisioning the instance"
        return _Wanted(ConditionStatus.FALSE, DEPROVISIONING_REASON, message)
    progressing = _condition(status, ConditionType.PROGRESSING)
    reason = progressing.reason if progressing is not None else ""
    message = progressing.message if progressing is not None else ""
    if status.phase is Phase.READY:
        return _Wanted(ConditionStatus.TRUE, reason, message)
    return _Wanted(ConditionStatus.FALSE, reason, message)


def _pending(status: ComputeInstanceStatus) -> str:
    if not status.desired_config_version:
        return "No configuration applied yet"
    return f"Configuration {status.desired_config_version} not applied yet"


def _job_text(what: str, job: JobStatus | None) -> str:
    if job is None:
        return ""
    text = f"{what} job {job.id or '(not launched)'} {job.state.value}"
    return f"{text}: {job.message}" if job.message else text


def _copied(condition: Condition | None) -> _Wanted:
    """A resource condition as the record's; an absent one is FALSE (the controller's
    default), with no reason."""
    if condition is None:
        return _Wanted(ConditionStatus.FALSE)
    return _Wanted(CONDITION_STATUS[condition.status], condition.reason, condition.message)


def _condition(status: ComputeInstanceStatus, kind: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind.value), None)


def _conditions(current: Iterable[Any], resource: Resource, now: datetime) -> list[Object]:
    """The record's conditions with the owned ones replaced (in place, so the order is kept)
    and the missing ones appended; the others are kept as they are."""
    wanted = desired_conditions(resource)
    result: list[Object] = []
    seen: set[str] = set()
    for old in current:
        if not isinstance(old, dict):
            continue
        kind = old.get("type")
        match = next((k for k in wanted if k.value == kind), None)
        if match is None:
            result.append(dict(old))
            continue
        if match.value in seen:
            continue  # one condition per type: a duplicate of an owned one goes
        seen.add(match.value)
        result.append(_record_form(match, wanted[match], old, now))
    for kind, value in wanted.items():
        if kind.value not in seen:
            result.append(_record_form(kind, value, None, now))
    return result


def _record_form(
    kind: RecordCondition, wanted: _Wanted, old: Mapping[str, Any] | None, now: datetime
) -> Object:
    condition: Object = {"type": kind.value, "status": wanted.status.value}
    if wanted.reason:
        condition["reason"] = wanted.reason
    if wanted.message:
        condition["message"] = wanted.message
    if old is not None and old.get("status") == wanted.status.value:
        since = old.get("last_transition_time")
    else:
        since = _time(now)
    if since:
        condition["last_transition_time"] = since
    return condition


def _record_condition(conditions: Iterable[Any], kind: RecordCondition) -> Mapping[str, Any] | None:
    for condition in conditions:
        if isinstance(condition, dict) and condition.get("type") == kind.value:
            return condition
    return None


def _owned(status: Mapping[str, Any]) -> Object:
    return {name: status[name] for name in OWNED_FIELDS if status.get(name) is not None}


def _put(target: Object, name: str, value: Any) -> None:
    if value is not None and value != "":
        target[name] = value


def _canonical(value: Any) -> Any:
    """A value compared by meaning: timestamps as instants (the service re-renders them), empty
    strings and nulls as absent."""
    if isinstance(value, dict):
        items = ((k, _canonical(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if value == "":
        return None
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            return value
    return value


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
