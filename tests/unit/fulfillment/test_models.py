"""The wire objects: upstream's spellings, strictness, DNS-label names, the public view."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cloudkit.fulfillment import models

SPEC: dict[str, Any] = {"template": "small"}


def fields_at_fault(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def test_enum_values_are_spelled_as_proto_json_renders_them() -> None:
    assert str(models.ComputeInstanceState.RUNNING) == "COMPUTE_INSTANCE_STATE_RUNNING"
    assert {s.name for s in models.ComputeInstanceState} == {
        "UNSPECIFIED",
        "STARTING",
        "RUNNING",
        "FAILED",
        "DELETING",
        "STOPPING",
        "STOPPED",
        "PAUSED",
    }
    assert {c.value for c in models.ComputeInstanceConditionType} >= {
        "COMPUTE_INSTANCE_CONDITION_TYPE_CONFIGURATION_APPLIED",
        "COMPUTE_INSTANCE_CONDITION_TYPE_READY",
        "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_IN_PROGRESS",
        "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_FAILED",
        "COMPUTE_INSTANCE_CONDITION_TYPE_PROVISIONED",
        "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_REQUIRED",
    }
    assert str(models.ConditionStatus.TRUE) == "CONDITION_STATUS_TRUE"
    assert models.EventType.wire("SIGNALED") == "EVENT_TYPE_OBJECT_SIGNALED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spec": {**SPEC, "colour": "red"}}, "spec.colour"),
        ({"spec": SPEC, "metadata": {"nmae": "x"}}, "metadata.nmae"),
        ({"spec": {**SPEC, "boot_disk": {"size_gib": "big"}}}, "spec.boot_disk.size_gib"),
        ({"spec": {**SPEC, "run_strategy": "Sometimes"}}, "spec.run_strategy"),
        ({"spec": {}}, "spec.template"),
        ({"spec": SPEC, "status": {"state": "RUNNING"}}, "status.state"),
    ],
)
def test_unknown_fields_and_wrong_types_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        models.ComputeInstance.model_validate(body)
    assert field in fields_at_fault(caught.value)


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "a" * 64, "web.1", "", "wéb"])
def test_a_name_that_is_not_a_dns_label_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        models.ComputeInstance.model_validate({"metadata": {"name": name}, "spec": SPEC})
    assert fields_at_fault(caught.value) == ["metadata.name"]


@pytest.mark.parametrize("name", ["web", "a", "web-1", "0-a", "a" * 63])
def test_dns_labels_are_accepted(name: str) -> None:
    models.ComputeInstance.model_validate({"metadata": {"name": name}, "spec": SPEC})


def test_the_public_model_has_no_finalizers_or_hub() -> None:
    for body in ({"metadata": {"finalizers": ["x"]}}, {"status": {"hub": "h"}}):
        with pytest.raises(ValidationError):
            models.ComputeInstance.model_validate({**body, "spec": SPEC})
        models.PrivateComputeInstance.model_validate({**body, "spec": SPEC})


def test_the_public_view_trims_what_only_the_private_api_shows() -> None:
    stored: dict[str, Any] = {
        "id": "1",
        "metadata": {"name": "a", "finalizers": ["fulfillment-controller"]},
        "spec": SPEC,
        "status": {"hub": "h1", "state": "COMPUTE_INSTANCE_STATE_STARTING"},
    }
    view = models.public_view(stored)
    assert view["metadata"] == {"name": "a"}
    assert view["status"] == {"state": "COMPUTE_INSTANCE_STATE_STARTING"}
    assert stored["metadata"]["finalizers"] == ["fulfillment-controller"]  # untouched
    models.ComputeInstance.model_validate(view)
