"""PATCH semantics, pure: the mask, what each API may write, immutable fields named."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.fulfillment import models
from cloudkit.fulfillment.routes.compute_instances import PRIVATE, PUBLIC
from cloudkit.fulfillment.updates import (
    UpdateRefused,
    check_immutable,
    implicit_mask,
    merge,
    parse_mask,
)

STORED: dict[str, Any] = {
    "id": "1",
    "metadata": {"name": "web", "labels": {"a": "1"}, "version": 3, "finalizers": ["f"]},
    "spec": {"template": "small", "run_strategy": "Always", "boot_disk": {"size_gib": 10}},
    "status": {"state": "COMPUTE_INSTANCE_STATE_RUNNING", "hub": "h"},
}


def test_the_mask_is_comma_separated_field_paths() -> None:
    assert parse_mask("spec.run_strategy, metadata.labels") == [
        "spec.run_strategy",
        "metadata.labels",
    ]
    assert parse_mask(None) is None and parse_mask("  ") is None


def test_with_a_mask_only_the_named_fields_change_and_a_named_absent_field_is_cleared() -> None:
    body = {"spec": {"run_strategy": "Halted", "user_data": "ignored"}, "metadata": {}}
    merged = merge(STORED, body, ["spec.run_strategy", "metadata.labels"])
    assert merged["spec"] == {**STORED["spec"], "run_strategy": "Halted"}
    assert "labels" not in merged["metadata"]
    assert merged["status"] == STORED["status"]
    assert STORED["spec"]["run_strategy"] == "Always"  # the stored object is not changed


def test_without_a_mask_the_whole_spec_is_replaced() -> None:
    body = {"spec": {"template": "small", "boot_disk": {"size_gib": 10}}}
    mask = implicit_mask(body, PUBLIC.writable)
    assert mask == ["spec"]
    assert "run_strategy" not in merge(STORED, body, mask)["spec"]


def test_without_a_mask_the_public_api_ignores_status_and_the_private_api_takes_it() -> None:
    body = {"spec": STORED["spec"], "status": {"state": "COMPUTE_INSTANCE_STATE_FAILED"}}
    assert "status" not in implicit_mask(body, PUBLIC.writable)
    assert "status" in implicit_mask(body, PRIVATE.writable)


@pytest.mark.parametrize(
    "path",
    ["status.state", "status", "metadata.finalizers", "metadata.tenant", "metadata.version", "id"],
)
def test_a_tenant_may_not_write_what_the_system_owns(path: str) -> None:
    with pytest.raises(UpdateRefused) as caught:
        PUBLIC.writable.check(path)
    assert caught.value.field == path


@pytest.mark.parametrize("path", ["status.state", "metadata.finalizers", "status.hub"])
def test_the_private_api_writes_status_and_finalizers(path: str) -> None:
    PRIVATE.writable.check(path)


def test_a_path_that_names_no_field_is_refused() -> None:
    with pytest.raises(UpdateRefused, match="no such field"):
        PUBLIC.writable.check("spec.colour")
    with pytest.raises(UpdateRefused, match="no such field"):
        PUBLIC.writable.check("spec.boot_disk.size_gib.x")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("template", "large"),
        ("template_parameters", {"cpu": 4}),
        ("image", {"source_ref": "quay.io/x"}),
        ("boot_disk", {"size_gib": 20}),
        ("additional_disks", [{"size_gib": 1}]),
    ],
)
def test_changing_an_immutable_field_is_refused_naming_it(field: str, value: Any) -> None:
    updated = merge(STORED, {"spec": {field: value}}, [f"spec.{field}"])
    with pytest.raises(UpdateRefused) as caught:
        check_immutable(STORED, updated)
    assert caught.value.field == f"spec.{field}"
    assert field in models.IMMUTABLE_SPEC_FIELDS


def test_mutable_fields_and_an_unchanged_immutable_one_pass() -> None:
    body = {"spec": {**STORED["spec"], "run_strategy": "Halted", "template_parameters": {}}}
    check_immutable(STORED, merge(STORED, body, ["spec"]))
