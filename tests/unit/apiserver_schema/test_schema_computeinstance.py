"""The committed ComputeInstance CRD's schema through prune → default → validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudkit.api.models import IMMUTABLE_SPEC_FIELDS
from cloudkit.local.apiserver.schema import apply_defaults, check_structural, prune, validate

CRD = Path(__file__).parents[3] / "deploy/crds/cloudkit.openshift.io_computeinstances.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def instance(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": "vm1", "namespace": "default"},
        "spec": {
            "templateID": "cloudkit.templates.ocp_vm",
            "cores": 2,
            "memoryGiB": 4,
            "runStrategy": "Always",
            "image": {"sourceType": "registry", "sourceRef": "quay.io/x/y:1"},
            "bootDisk": {"sizeGiB": 20, "storageClass": None},
            "additionalDisks": [{"sizeGiB": 5}],
            "sshKey": None,
            **spec,
        },
        "status": {
            "phase": "Ready",
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
                {"type": "Progressing", "status": "False", "observedGeneration": 3},
            ],
        },
    }


def write(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None) -> Any:
    pruned, unknown = prune(obj, schema)
    defaulted = apply_defaults(pruned, schema)
    return defaulted, unknown, validate(defaulted, schema, old)


def fields(causes: Any) -> list[tuple[str, str]]:
    return [(c.reason, c.field) for c in causes]


def test_crd_schema_is_structural(schema: dict[str, Any]) -> None:
    assert check_structural(schema) == []


def test_valid_instance_passes_unchanged(schema: dict[str, Any]) -> None:
    obj = instance()
    stored, unknown, causes = write(obj, schema)
    assert (unknown, causes) == ([], [])
    assert stored == obj


def test_cores_zero(schema: dict[str, Any]) -> None:
    _, _, causes = write(instance(cores=0), schema)
    assert fields(causes) == [("FieldValueInvalid", "spec.cores")]
    assert causes[0].message == (
        "Invalid value: 0: spec.cores in body should be greater than or equal to 1"
    )


def test_missing_template_id(schema: dict[str, Any]) -> None:
    obj = instance()
    del obj["spec"]["templateID"]
    _, _, causes = write(obj, schema)
    assert fields(causes) == [("FieldValueRequired", "spec.templateID")]


def test_bad_template_id_pattern(schema: dict[str, Any]) -> None:
    _, _, causes = write(instance(templateID="9-bad"), schema)
    assert fields(causes) == [("FieldValueInvalid", "spec.templateID")]


def test_unsupported_run_strategy(schema: dict[str, Any]) -> None:
    _, _, causes = write(instance(runStrategy="Sometimes"), schema)
    assert fields(causes) == [("FieldValueNotSupported", "spec.runStrategy")]
    assert (
        causes[0].message == 'Unsupported value: "Sometimes": supported values: "Always", "Halted"'
    )


def test_nested_disk_errors_and_unknown_fields(schema: dict[str, Any]) -> None:
    obj = instance(additionalDisks=[{"sizeGiB": 5}, {"sizeGiB": 70000, "bogus": 1}, {}], junk=1)
    _, unknown, causes = write(obj, schema)
    assert sorted(unknown) == ["spec.additionalDisks[1].bogus", "spec.junk"]
    assert fields(causes) == [
        ("FieldValueInvalid", "spec.additionalDisks[1].sizeGiB"),
        ("FieldValueRequired", "spec.additionalDisks[2].sizeGiB"),
    ]


def test_status_conditions_keyed_by_type(schema: dict[str, Any]) -> None:
    obj = instance()
    obj["status"]["conditions"].append({"type": "Available", "status": "Maybe"})
    _, _, causes = write(obj, schema)
    assert fields(causes) == [
        ("FieldValueDuplicate", "status.conditions[2]"),
        ("FieldValueNotSupported", "status.conditions[2].status"),
    ]


def test_immutable_spec_fields_on_update(schema: dict[str, Any]) -> None:
    old = instance()
    same = copy.deepcopy(old)
    same["spec"]["runStrategy"] = "Halted"  # mutable
    assert write(same, schema, old)[2] == []
    changed = instance(
        cores=4,
        memoryGiB=8,
        image={"sourceType": "registry", "sourceRef": "other"},
        bootDisk={"sizeGiB": 30},
        additionalDisks=[{"sizeGiB": 5}, {"sizeGiB": 6}],
    )
    causes = write(changed, schema, old)[2]
    assert sorted((c.field, c.message) for c in causes) == [
        ("spec.additionalDisks", 'Invalid value: "array": additionalDisks is immutable'),
        ("spec.bootDisk", 'Invalid value: "object": bootDisk is immutable'),
        ("spec.cores", 'Invalid value: "integer": cores is immutable'),
        ("spec.image", 'Invalid value: "object": image is immutable'),
        ("spec.memoryGiB", 'Invalid value: "integer": memoryGiB is immutable'),
    ]


def test_setting_an_immutable_field_that_was_absent_is_allowed(schema: dict[str, Any]) -> None:
    old = instance()
    del old["spec"]["cores"]
    assert write(instance(cores=8), schema, old)[2] == []


@pytest.mark.parametrize("field", IMMUTABLE_SPEC_FIELDS)
def test_an_immutable_field_cannot_be_removed_once_set(schema: dict[str, Any], field: str) -> None:
    # Removing it, then setting it anew, would otherwise change it in two steps.
    old = instance()
    removed = copy.deepcopy(old)
    del removed["spec"][field]
    expected = (
        "spec",
        f'Invalid value: "object": {field} is immutable: it cannot be removed once set',
    )
    causes = write(removed, schema, old)[2]
    assert [(c.field, c.message) for c in causes] == [expected]
    # null is removal too: upstream's CEL treats a null property as absent.
    nulled = copy.deepcopy(old)
    nulled["spec"][field] = None
    causes = write(nulled, schema, old)[2]
    assert expected in [(c.field, c.message) for c in causes]


@pytest.mark.parametrize("field", IMMUTABLE_SPEC_FIELDS)
def test_removal_rules_do_not_run_on_create_or_on_absent_fields(
    schema: dict[str, Any], field: str
) -> None:
    created = instance()
    del created["spec"][field]
    causes = write(created, schema)[2]
    assert all(field not in c.message for c in causes), causes
    assert write(copy.deepcopy(created), schema, created)[2] == []
