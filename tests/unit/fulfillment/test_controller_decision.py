"""The fulfillment controller's decision, pure: record + observation → actions, and the record's
spec as our CRD's spec."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudkit.api import names
from cloudkit.fulfillment.controller import resource_spec
from cloudkit.fulfillment.controller.decision import (
    FINALIZER,
    CreateResource,
    CreateSecret,
    DeleteResource,
    Observation,
    PatchResource,
    WriteRecord,
    decide,
    failed,
)

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
STARTING = "COMPUTE_INSTANCE_STATE_STARTING"
FAILED = "COMPUTE_INSTANCE_STATE_FAILED"
PROVISIONED = "COMPUTE_INSTANCE_CONDITION_TYPE_PROVISIONED"


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "0b6c1b1e-1111-4222-8333-444455556666",
        "metadata": {"tenant": "acme", "version": 3, "finalizers": []},
        "spec": {"template": "small"},
        "status": {},
    }
    for path, value in changes.items():
        section, _, name = path.partition("__")
        base[section][name] = value
    return base


def placed(**changes: Any) -> dict[str, Any]:
    ready = record(**changes)
    ready["metadata"].setdefault("finalizers", []).append(FINALIZER)
    ready["metadata"]["finalizers"] = list(dict.fromkeys(ready["metadata"]["finalizers"]))
    ready["status"].update(
        state=STARTING, hub="hub-1", conditions=[{"type": PROVISIONED, "status": "F"}]
    )
    return ready


def resource(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "vm-abcde", "namespace": "tenants", "uid": "u-1"},
        "spec": {"templateID": "small", **spec},
    }


def test_a_new_record_gets_the_finalizer_state_starting_and_a_hub_in_one_write() -> None:
    decision = decide(record(), Observation(NOW, usable_hubs=("hub-1", "hub-2")))
    (write,) = decision.actions
    assert isinstance(write, WriteRecord)
    assert write.finalizers == (FINALIZER,)
    assert write.status["state"] == STARTING
    assert write.status["state_transition_time"] == "2026-12-07T01:00:00Z"
    assert write.status["hub"] == "hub-1"
    assert {c["status"] for c in write.status["conditions"]} == {"CONDITION_STATUS_FALSE"}
    assert len(write.status["conditions"]) == 6


def test_a_placed_record_without_resource_creates_it_in_the_hubs_namespace() -> None:
    decision = decide(placed(), Observation(NOW, hub_namespace="tenants"))
    (create,) = decision.actions
    assert isinstance(create, CreateResource)
    metadata = create.body["metadata"]
    assert metadata["generateName"] == "vm-" and metadata["namespace"] == "tenants"
    assert metadata["labels"] == {names.INSTANCE_UUID_LABEL: placed()["id"]}
    assert metadata["annotations"] == {names.TENANT_ANNOTATION: "acme"}


def test_an_in_sync_resource_needs_nothing() -> None:
    assert decide(placed(), Observation(NOW, resource=resource())).actions == ()


def test_a_mutable_spec_change_is_a_merge_patch_of_those_fields_only() -> None:
    changed = placed(spec__run_strategy="Halted", spec__restart_requested_at="2026-12-07T01:02:03Z")
    (patch,) = decide(changed, Observation(NOW, resource=resource(runStrategy="Always"))).actions
    assert patch == PatchResource(
        "tenants",
        "vm-abcde",
        {"spec": {"runStrategy": "Halted", "restartRequestedAt": "2026-12-07T01:02:03Z"}},
    )


def test_a_cleared_mutable_field_is_removed_by_the_patch() -> None:
    (patch,) = decide(placed(), Observation(NOW, resource=resource(runStrategy="Always"))).actions
    assert patch == PatchResource("tenants", "vm-abcde", {"spec": {"runStrategy": None}})


def test_the_same_instant_written_differently_is_no_change() -> None:
    same = placed(spec__restart_requested_at="2026-12-07T01:02:03+00:00")
    observed = resource(restartRequestedAt="2026-12-07T01:02:03.000Z")
    assert decide(same, Observation(NOW, resource=observed)).actions == ()


def test_user_data_becomes_a_secret_owned_by_the_resource() -> None:
    with_data = placed(spec__user_data="#cloud-config\n")
    (create,) = decide(with_data, Observation(NOW, resource=resource())).actions
    assert isinstance(create, CreateSecret)
    metadata = create.body["metadata"]
    assert metadata["name"] == f"{with_data['id']}-user-data"
    assert metadata["ownerReferences"][0]["uid"] == "u-1"
    assert create.body["stringData"] == {"userdata": "#cloud-config\n"}
    present = Observation(NOW, resource=resource(), user_data_secret={"metadata": {}})
    assert decide(with_data, present).actions == ()


def test_the_record_spec_maps_to_the_crd_fields() -> None:
    full = record(
        spec__template_parameters={"b": 1, "a": "x"},
        spec__image={"source_type": "registry", "source_ref": "quay.io/a/b:1"},
        spec__boot_disk={"size_gib": 10},
        spec__additional_disks=[{"size_gib": 1}, {"size_gib": 2}],
        spec__ssh_public_key="ssh-ed25519 K",
        spec__user_data="x",
        spec__run_strategy="Always",
    )
    assert resource_spec.resource_spec(full) == {
        "templateID": "small",
        "templateParameters": '{"a": "x", "b": 1}',
        "image": {"sourceType": "registry", "sourceRef": "quay.io/a/b:1"},
        "bootDisk": {"sizeGiB": 10},
        "additionalDisks": [{"sizeGiB": 1}, {"sizeGiB": 2}],
        "sshKey": "ssh-ed25519 K",
        "userDataSecretRef": {"name": f"{full['id']}-user-data"},
        "runStrategy": "Always",
    }


def test_no_hub_to_place_on_is_a_failure_that_says_so() -> None:
    decision = decide(record(), Observation(NOW))
    (write,) = decision.actions
    assert isinstance(write, WriteRecord)
    assert write.status["state"] == FAILED
    (provisioned,) = [c for c in write.status["conditions"] if c["type"] == PROVISIONED]
    assert provisioned["reason"] == "ReconciliationFailed"
    assert "no hub" in provisioned["message"]


def test_a_record_without_tenant_is_a_failure() -> None:
    anonymous = record()
    anonymous["metadata"]["tenant"] = None
    assert "no tenant" in (decide(anonymous, Observation(NOW, usable_hubs=("h",))).failure or "")


def test_a_failure_already_written_is_not_written_again() -> None:
    once = failed(placed(), "hub says 422", NOW)
    (write,) = once.actions
    assert isinstance(write, WriteRecord)
    again = placed()
    again["status"] = write.status
    assert failed(again, "hub says 422", NOW).actions == ()


def test_our_failure_clears_once_the_resource_is_in_order() -> None:
    marked = placed()
    marked["status"] = failed(placed(), "hub was down", NOW).actions[0].status  # type: ignore[union-attr]
    (write,) = decide(marked, Observation(NOW, resource=resource())).actions
    assert isinstance(write, WriteRecord) and write.status["state"] == STARTING


def test_a_deleted_record_deletes_its_resource_then_waits() -> None:
    deleted = placed(metadata__deletion_timestamp="2026-12-07T01:00:00Z")
    decision = decide(deleted, Observation(NOW, resource=resource(), recheck_s=42.0))
    assert decision.actions == (DeleteResource("tenants", "vm-abcde"),)
    assert decision.requeue_after == 42.0, "the shell's recheck: the watch wakes it sooner"
    going = resource()
    going["metadata"]["deletionTimestamp"] = "2026-12-07T01:00:01Z"
    waiting = decide(deleted, Observation(NOW, resource=going, recheck_s=42.0))
    assert waiting.actions == () and waiting.requeue_after == 42.0


def test_a_deleted_record_loses_the_finalizer_only_once_the_resource_is_gone() -> None:
    deleted = placed(metadata__deletion_timestamp="2026-12-07T01:00:00Z")
    deleted["metadata"]["finalizers"] = ["other", FINALIZER]
    (write,) = decide(deleted, Observation(NOW, resource=None)).actions
    assert write == WriteRecord(("other",), deleted["status"])


def test_a_deleted_record_whose_hub_is_gone_just_loses_the_finalizer() -> None:
    deleted = placed(metadata__deletion_timestamp="2026-12-07T01:00:00Z")
    # Whatever the shell could still see: nothing is done on a cluster that is gone.
    (write,) = decide(deleted, Observation(NOW, hub_gone=True, resource=resource())).actions
    assert isinstance(write, WriteRecord) and write.finalizers == ()


def test_a_deleted_record_without_our_finalizer_is_left_alone() -> None:
    deleted = record(metadata__deletion_timestamp="2026-12-07T01:00:00Z")
    assert decide(deleted, Observation(NOW, resource=resource())).actions == ()
