"""The feedback decision (`cloudkit.operator.feedback.decide`), pure: the mapping, and its
invariants as properties over generated resources and records.

The record after an update is computed by the service's own merge (`fulfillment.updates.merge`
with the update's mask), so "applied" means what the API would store.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudkit.api import names
from cloudkit.api.models import ConditionType
from cloudkit.fulfillment.controller.decision import FAILURE_REASON
from cloudkit.fulfillment.models import PrivateComputeInstance
from cloudkit.fulfillment.updates import merge
from cloudkit.operator.feedback import (
    FINALIZER,
    OWNED_FIELDS,
    UPDATE_MASK,
    Resource,
    StatusUpdate,
    decide,
    desired_conditions,
)

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
STATE = "COMPUTE_INSTANCE_STATE_"
TYPE = "COMPUTE_INSTANCE_CONDITION_TYPE_"
TRUE, FALSE = "CONDITION_STATUS_TRUE", "CONDITION_STATUS_FALSE"


def resource(
    phase: str | None = None,
    *,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    finalizers: list[str] | None = None,
    **status: Any,
) -> Resource:
    metadata: dict[str, Any] = {
        "name": "vm-abc",
        "namespace": "ns",
        "labels": {names.INSTANCE_UUID_LABEL: "r-1"},
        "finalizers": finalizers if finalizers is not None else [names.OPERATOR_FINALIZER],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T02:59:00Z"
    body: dict[str, Any] = {"conditions": conditions or [], **status}
    if phase is not None:
        body["phase"] = phase
    return Resource.read({"metadata": metadata, "spec": {}, "status": body})


def record(**status: Any) -> dict[str, Any]:
    return {
        "id": "r-1",
        "metadata": {"version": 3, "tenant": "acme", "finalizers": ["fulfillment-controller"]},
        "spec": {"template": "small"},
        "status": {"hub": "h-1", **status},
    }


def applied(current: dict[str, Any], update: StatusUpdate) -> dict[str, Any]:
    """The record as the service stores it after the masked PATCH."""
    result = merge(current, update.body(current["metadata"]["version"]), list(UPDATE_MASK))
    PrivateComputeInstance.model_validate(result)  # what the service validates with
    result["metadata"]["version"] += 1
    return result


def condition(rec: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in rec["status"].get("conditions") or [] if c["type"] == TYPE + kind]
    assert len(found) <= 1, found
    return found[0] if found else {}


# --- the mapping, example by example ----------------------------------------------------------


def test_phases_become_states() -> None:
    for phase, state in (
        ("Progressing", "STARTING"),
        ("Ready", "RUNNING"),
        ("Failed", "FAILED"),
        ("Deleting", "DELETING"),
    ):
        update = decide(resource(phase), record(state=STATE + "STARTING"), NOW)
        assert update is not None and update.status["state"] == STATE + state, phase


def test_no_phase_yet_leaves_the_controllers_state() -> None:
    rec = record(state=STATE + "STARTING", state_transition_time="2026-12-07T02:00:00Z")
    update = decide(resource(None), rec, NOW)
    assert update is not None
    assert update.status["state"] == STATE + "STARTING"
    assert update.status["state_transition_time"] == "2026-12-07T02:00:00Z"


def test_a_deleted_resource_is_deleting_whatever_its_phase() -> None:
    update = decide(resource("Ready", deleting=True), record(state=STATE + "RUNNING"), NOW)
    assert update is not None and update.status["state"] == STATE + "DELETING"


def test_a_failed_job_message_reaches_the_record() -> None:
    message = "Provisioning job 42 Failed: Task 'Create the VM' failed: quota exceeded"
    progressing = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProvisioningFailed",
        "message": message,
    }
    update = decide(resource("Failed", conditions=[progressing]), record(), NOW)
    assert update is not None
    rec = applied(record(), update)
    assert rec["status"]["state"] == STATE + "FAILED"
    provisioned = condition(rec, "PROVISIONED")
    assert provisioned["status"] == FALSE
    assert (provisioned["reason"], provisioned["message"]) == ("ProvisioningFailed", message)


def test_address_restart_and_readiness_are_copied() -> None:
    available = {
        "type": "Available",
        "status": "True",
        "reason": "VirtualMachineReady",
        "message": "Ready",
    }
    res = resource(
        "Ready",
        conditions=[available],
        ipAddress="10.0.0.7",
        lastRestartedAt="2026-12-07T01:00:00Z",
    )
    rec = applied(record(), decide(res, record(), NOW) or StatusUpdate({}))
    assert rec["status"]["internal_ip_address"] == "10.0.0.7"
    assert rec["status"]["last_restarted_at"] == "2026-12-07T01:00:00Z"
    ready = condition(rec, "READY")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        TRUE,
        "VirtualMachineReady",
        "Ready",
    )
    assert ready["last_transition_time"] == "2026-12-07T03:00:00Z"


def test_the_released_resource_says_deprovisioned() -> None:
    job = {"id": "7", "state": "Succeeded", "message": "done"}
    deleting = resource("Deleting", deleting=True, deprovisionJob=job)
    released = resource("Deleting", deleting=True, finalizers=[FINALIZER], deprovisionJob=job)
    during = applied(record(), decide(deleting, record(), NOW) or StatusUpdate({}))
    assert condition(during, "PROVISIONED")["reason"] == "Deprovisioning"
    final = applied(during, decide(released, during, LATER) or StatusUpdate({}))
    provisioned = condition(final, "PROVISIONED")
    assert provisioned["reason"] == "Deprovisioned"
    assert provisioned["message"] == "Deprovisioning job 7 Succeeded: done"


def test_what_is_not_the_feedbacks_is_kept() -> None:
    required = {"type": TYPE + "RESTART_REQUIRED", "status": TRUE, "reason": "Spec"}
    rec = record(conditions=[required], external_ip_address="192.0.2.1")
    after = applied(rec, decide(resource("Ready"), rec, NOW) or StatusUpdate({}))
    assert condition(after, "RESTART_REQUIRED") == required
    assert after["status"]["external_ip_address"] == "192.0.2.1"
    assert after["status"]["hub"] == "h-1"
    assert after["metadata"]["finalizers"] == ["fulfillment-controller"]


def test_a_failure_the_controller_wrote_is_left_to_it() -> None:
    provisioned = {"type": TYPE + "PROVISIONED", "status": FALSE, "reason": FAILURE_REASON}
    rec = record(state=STATE + "FAILED", conditions=[provisioned])
    assert decide(resource("Ready"), rec, NOW) is None
    # …but not a deletion: the tenant must see it end.
    assert decide(resource("Ready", deleting=True), rec, NOW) is not None


def test_timestamps_are_compared_as_instants() -> None:
    """The service re-renders timestamps; the same instant spelt otherwise is no change."""
    res = resource("Ready", lastRestartedAt="2026-12-07T01:00:00Z")
    rec = applied(record(), decide(res, record(), NOW) or StatusUpdate({}))
    rec["status"]["last_restarted_at"] = "2026-12-07T01:00:00.000000+00:00"
    assert decide(res, rec, LATER) is None


def test_the_body_carries_the_version_for_the_lock() -> None:
    update = decide(resource("Ready"), record(), NOW)
    assert update is not None
    assert update.body(3)["metadata"] == {"version": 3}
    assert set(update.body(3)["status"]) <= set(OWNED_FIELDS)


# --- properties -------------------------------------------------------------------------------

EXAMPLES = 100
OWNED_TYPES = {kind.value for kind in desired_conditions(resource())}
PHASES = st.sampled_from([None, "Progressing", "Ready", "Failed", "Deleting"])
OUR_CONDITION = st.fixed_dictionaries(
    {
        "type": st.sampled_from([t.value for t in ConditionType]),
        "status": st.sampled_from(["True", "False", "Unknown"]),
        "reason": st.sampled_from(["", "AsExpected", "ProvisioningFailed", "Deleting"]),
        "message": st.text(max_size=20),
    }
)
TIMES = st.sampled_from(["2026-12-07T01:00:00Z", "2026-12-06T23:00:00.5Z"])
JOBS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["", "1", "99"]),
            "state": st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Canceled"]),
            "message": st.text(max_size=10),
        }
    ),
)


@st.composite
def resources(draw: st.DrawFn) -> Resource:
    status: dict[str, Any] = {}
    for name, values in (
        ("ipAddress", st.sampled_from(["10.0.0.1", "10.0.0.2"])),
        ("lastRestartedAt", TIMES),
        ("desiredConfigVersion", st.sampled_from(["a", "b"])),
        ("reconciledConfigVersion", st.sampled_from(["a", "b"])),
        ("deprovisionJob", JOBS),
    ):
        value = draw(st.one_of(st.none(), values))
        if value is not None:
            status[name] = value
    conditions = draw(st.lists(OUR_CONDITION, max_size=6, unique_by=lambda c: c["type"]))
    finalizers = draw(
        st.lists(
            st.sampled_from([FINALIZER, names.OPERATOR_FINALIZER, names.AUTOMATION_FINALIZER]),
            unique=True,
        )
    )
    return resource(
        draw(PHASES),
        conditions=conditions,
        deleting=draw(st.booleans()),
        finalizers=finalizers,
        **status,
    )


RECORD_CONDITION = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [TYPE + t for t in ("READY", "PROVISIONED", "RESTART_REQUIRED", "RESTART_FAILED")]
        ),
        "status": st.sampled_from([TRUE, FALSE, "CONDITION_STATUS_UNSPECIFIED"]),
    },
    optional={
        "reason": st.sampled_from(["AsExpected", FAILURE_REASON, "Deprovisioned"]),
        "message": st.text(max_size=10),
        "last_transition_time": TIMES,
    },
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    status: dict[str, Any] = {}
    state = draw(st.one_of(st.none(), st.sampled_from(["STARTING", "RUNNING", "FAILED"])))
    if state is not None:
        status["state"] = STATE + state
        status["state_transition_time"] = draw(TIMES)
    status["conditions"] = draw(st.lists(RECORD_CONDITION, max_size=5))
    if draw(st.booleans()):
        status["internal_ip_address"] = "10.0.0.1"
    return record(**status)


@settings(max_examples=EXAMPLES, deadline=None)
@given(resources(), records())
def test_applying_the_update_and_deciding_again_answers_none(
    res: Resource, rec: dict[str, Any]
) -> None:
    """Idempotence: once written, the same resource asks for no further write (later too)."""
    update = decide(res, rec, NOW)
    if update is None:
        return
    after = applied(rec, update)
    assert decide(res, after, NOW) is None
    assert decide(res, after, LATER) is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(resources(), records())
def test_a_write_always_changes_the_record(res: Resource, rec: dict[str, Any]) -> None:
    """No write when nothing changed: an update is never a no-op on the stored record."""
    update = decide(res, rec, NOW)
    if update is not None:
        assert applied(rec, update)["status"] != rec["status"]


@settings(max_examples=EXAMPLES, deadline=None)
@given(resources(), records())
def test_transition_times_move_only_with_their_status(res: Resource, rec: dict[str, Any]) -> None:
    update = decide(res, rec, LATER)
    if update is None:
        return
    after = applied(rec, update)
    before_state, after_state = rec["status"].get("state"), after["status"].get("state")
    moved = after["status"].get("state_transition_time") != rec["status"].get(
        "state_transition_time"
    )
    assert moved == (before_state != after_state), (rec["status"], after["status"])
    old: dict[str, dict[str, Any]] = {}
    for previous in rec["status"]["conditions"]:
        old.setdefault(previous["type"], previous)  # of duplicates, the first counts
    for new in after["status"]["conditions"]:
        if new["type"] not in OWNED_TYPES:
            continue  # kept as they were (test_only_the_owned_fields_are_written)
        previous = old.get(new["type"])
        if previous is None or previous.get("status") != new.get("status"):
            continue
        assert new.get("last_transition_time") == previous.get("last_transition_time"), new


@settings(max_examples=EXAMPLES, deadline=None)
@given(resources(), records())
def test_only_the_owned_fields_are_written(res: Resource, rec: dict[str, Any]) -> None:
    original = copy.deepcopy(rec)
    update = decide(res, rec, NOW)
    assert rec == original, "decide does not touch its input"
    if update is None:
        return
    assert set(update.status) <= set(OWNED_FIELDS)
    after = applied(rec, update)
    assert after["metadata"]["finalizers"] == rec["metadata"]["finalizers"]
    assert after["status"]["hub"] == rec["status"]["hub"]
    kept = [c for c in rec["status"]["conditions"] if c["type"] == TYPE + "RESTART_REQUIRED"]
    assert [c for c in after["status"]["conditions"] if c in kept] == kept
