"""What the controller does with one record, pure: `decide(record, observation) -> Decision`.

Level-based, like the operator's lifecycle core: it reads the whole record and what the shell
saw on the record's hub, and answers the next actions. The shell executes them in order and
calls again until nothing is left to do (a record write first and alone, so every later step
starts from the version it wrote). No I/O, no clock: `observation.now` is the time.

Order for a live record: finalizer, defaults (state STARTING, conditions FALSE) and placement on
a hub in one write; then the resource (create, or merge-patch its mutable spec), then its user
data Secret. For a deleted record: delete the resource, wait until it is gone (the operator's
finalizers run first), then drop the finalizer (the service archives the record). A record whose
hub is gone only loses its finalizer: there is nothing left to clean on a cluster that is gone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudkit.fulfillment.controller import resource_spec
from cloudkit.fulfillment.models import (
    ComputeInstanceConditionType,
    ComputeInstanceState,
    ConditionStatus,
)

Object = dict[str, Any]

FINALIZER = "fulfillment-controller"
FAILURE_REASON = "ReconciliationFailed"
RECHECK_S = 10.0
"""How often a record waiting for its resource to go looks again: the hub's watch wakes it as
soon as the resource changes (`resource_watch`), this only covers a change the watch missed."""

CONDITION_TYPES = tuple(
    t for t in ComputeInstanceConditionType if t is not ComputeInstanceConditionType.UNSPECIFIED
)


@dataclass(frozen=True)
class Observation:
    """What the shell saw for one record."""

    now: datetime
    usable_hubs: tuple[str, ...] = ()
    """Ids of the hubs this controller has a kubeconfig for, in order of preference."""
    hub_namespace: str = ""
    """The namespace of the record's hub, where its resource lives."""
    hub_gone: bool = False
    """The record's `status.hub` names a hub that no longer exists."""
    resource: Object | None = None
    """The ComputeInstance labelled with the record's id on its hub (None: none there)."""
    user_data_secret: Object | None = None
    recheck_s: float = RECHECK_S
    """Seconds before a record waiting for its resource to go looks again by itself."""


@dataclass(frozen=True)
class WriteRecord:
    """Replace the record's finalizers and status (guarded by the version it was read at)."""

    finalizers: tuple[str, ...]
    status: Object


@dataclass(frozen=True)
class CreateResource:
    body: Object


@dataclass(frozen=True)
class PatchResource:
    namespace: str
    name: str
    patch: Object


@dataclass(frozen=True)
class DeleteResource:
    namespace: str
    name: str


@dataclass(frozen=True)
class CreateSecret:
    body: Object


Action = WriteRecord | CreateResource | PatchResource | DeleteResource | CreateSecret


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
    """Seconds until the record wants another look whatever happens (None: on events only)."""
    failure: str | None = None
    """Why the record cannot be reconciled, for people (also in the status written)."""


class Refused(Exception):
    """The record cannot become a resource (its data or this controller's configuration); the
    message says why, for the record's status."""


def decide(record: Object, observation: Observation) -> Decision:
    metadata = record.get("metadata") or {}
    if metadata.get("deletion_timestamp"):
        return _deleting(record, observation)
    return _live(record, observation)


def _finalizers(record: Object) -> list[str]:
    return list((record.get("metadata") or {}).get("finalizers") or [])


def _status(record: Object) -> Object:
    return copy.deepcopy(record.get("status") or {})


def _deleting(record: Object, observation: Observation) -> Decision:
    finalizers = _finalizers(record)
    if FINALIZER not in finalizers:
        return Decision()
    release = WriteRecord(tuple(f for f in finalizers if f != FINALIZER), _status(record))
    if not _status(record).get("hub") or observation.hub_gone:
        return Decision((release,))
    resource = observation.resource
    if resource is None:
        return Decision((release,))
    if (resource.get("metadata") or {}).get("deletionTimestamp"):
        return Decision(requeue_after=observation.recheck_s)  # its finalizers are running
    return Decision((DeleteResource(*_key(resource)),), observation.recheck_s)


def _live(record: Object, observation: Observation) -> Decision:
    try:
        prepared = _prepared(record, observation)
        if prepared is not None:
            return Decision((prepared,))
        if observation.hub_gone:
            raise Refused(f"hub {record['status']['hub']} does not exist any more")
        return _converged(record, observation)
    except Refused as refused:
        return failed(record, str(refused), observation.now)


def _prepared(record: Object, observation: Observation) -> WriteRecord | None:
    """The write that adds the finalizer, the defaults and the hub; None if all are there."""
    if not (record.get("metadata") or {}).get("tenant"):
        raise Refused("the record has no tenant")
    finalizers, status = _finalizers(record), _status(record)
    if FINALIZER not in finalizers:
        finalizers.append(FINALIZER)
    if status.get("state", ComputeInstanceState.UNSPECIFIED) == ComputeInstanceState.UNSPECIFIED:
        status["state"] = ComputeInstanceState.STARTING.value
        status["state_transition_time"] = _time(observation.now)
    if not status.get("conditions"):
        status["conditions"] = [
            {"type": t.value, "status": ConditionStatus.FALSE.value} for t in CONDITION_TYPES
        ]
    if not status.get("hub"):
        if not observation.usable_hubs:
            raise Refused(
                "no hub to place the instance on (none registered that this "
                "controller has a kubeconfig for)"
            )
        status["hub"] = observation.usable_hubs[0]
    if finalizers == _finalizers(record) and status == _status(record):
        return None
    return WriteRecord(tuple(finalizers), status)


def _converged(record: Object, observation: Observation) -> Decision:
    resource = observation.resource
    if resource is None:
        return Decision(
            (CreateResource(resource_spec.resource_body(record, observation.hub_namespace)),)
        )
    if (resource.get("metadata") or {}).get("deletionTimestamp"):
        # Deleted behind our back (kubectl): once it is gone, the next look creates it anew.
        return Decision(requeue_after=observation.recheck_s)
    actions: list[Action] = []
    patch = resource_spec.spec_patch(record, resource)
    if patch is not None:
        actions.append(PatchResource(*_key(resource), patch))
    secret = resource_spec.user_data_secret(record, resource)
    if secret is not None and observation.user_data_secret is None:
        actions.append(CreateSecret(secret))
    recovered = _recovered(record)
    if recovered is not None and not actions:
        actions.append(recovered)
    return Decision(tuple(actions))


def _recovered(record: Object) -> WriteRecord | None:
    """A record this controller marked FAILED whose resource is now in order goes back to
    STARTING (the operator's feedback then reports the resource's own state); a FAILED written
    by anyone else is theirs and stays."""
    status = _status(record)
    provisioned = _condition(status, ComputeInstanceConditionType.PROVISIONED)
    if status.get("state") != ComputeInstanceState.FAILED or provisioned is None:
        return None
    if provisioned.get("reason") != FAILURE_REASON:
        return None
    status["state"] = ComputeInstanceState.STARTING.value
    provisioned.pop("reason", None)
    provisioned.pop("message", None)
    return WriteRecord(tuple(_finalizers(record)), status)


def failed(record: Object, message: str, now: datetime) -> Decision:
    """State FAILED, condition PROVISIONED False with reason ReconciliationFailed and `message`;
    no write when the record says so already (a retry must not bump its version each time)."""
    status = _status(record)
    if status.get("state") != ComputeInstanceState.FAILED:
        status["state"] = ComputeInstanceState.FAILED.value
        status["state_transition_time"] = _time(now)
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    status["conditions"] = conditions
    provisioned = _condition(status, ComputeInstanceConditionType.PROVISIONED)
    if provisioned is None:
        provisioned = {"type": ComputeInstanceConditionType.PROVISIONED.value}
        conditions.append(provisioned)
    if provisioned.get("status") != ConditionStatus.FALSE:
        provisioned["last_transition_time"] = _time(now)
    provisioned.update(status=ConditionStatus.FALSE.value, reason=FAILURE_REASON, message=message)
    if status == _status(record):
        return Decision(failure=message)
    return Decision((WriteRecord(tuple(_finalizers(record)), status),), failure=message)


def _condition(status: Object, kind: ComputeInstanceConditionType) -> Object | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def _key(resource: Object) -> tuple[str, str]:
    metadata = resource["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


def _time(now: datetime) -> str:
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")
