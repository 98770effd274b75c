"""The generated ComputeInstance CRD: committed copy, structural shape, validation rules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cloudkit.api.crd import crd_manifest, openapi_schema, render_crds
from cloudkit.api.models import IMMUTABLE_SPEC_FIELDS

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "deploy" / "crds" / "cloudkit.openshift.io_computeinstances.yaml"


def test_committed_crd_is_the_generated_one() -> None:
    # Regenerate with `make crds` when this fails.
    assert COMMITTED.read_text() == render_crds()


def test_render_is_deterministic_and_newline_terminated() -> None:
    text = render_crds()
    assert text == render_crds()
    assert text.endswith("\n")
    assert "&id" not in text and "*id" not in text


def test_names_and_columns() -> None:
    spec = crd_manifest()["spec"]
    assert spec["group"] == "cloudkit.openshift.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["ci"]
    assert spec["names"]["listKind"] == "ComputeInstanceList"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {
        c["name"]: (c["jsonPath"], c["type"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    }
    assert columns == {
        "Template": (".spec.templateID", "string", 0),
        "Phase": (".status.phase", "string", 0),
        "Provision": (".status.provisionJob.state", "string", 0),
        "Deprovision": (".status.deprovisionJob.state", "string", 0),
        "Age": (".metadata.creationTimestamp", "date", 0),
        "IP": (".status.ipAddress", "string", 1),  # kubectl get -o wide
    }


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    schema = openapi_schema()
    for path, node in _walk(schema, ""):
        exempt = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert "type" in node or exempt, path
        for banned in ("$ref", "$defs", "definitions", "anyOf", "oneOf", "title", "default"):
            assert banned not in node, (path, banned)
        assert not ("properties" in node and "additionalProperties" in node), path
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_cel_immutability_on_exactly_the_immutable_fields() -> None:
    ruled = {
        path: node["x-kubernetes-validations"]
        for path, node in _walk(openapi_schema(), "")
        if "x-kubernetes-validations" in node
    }
    assert set(ruled) == {".spec"} | {f".spec.{f}" for f in IMMUTABLE_SPEC_FIELDS}
    for path, rules in ruled.items():
        if path == ".spec":
            continue
        field = path.rsplit(".", 1)[-1]
        assert rules == [{"rule": "self == oldSelf", "message": f"{field} is immutable"}]


def test_immutable_fields_cannot_be_removed_once_set() -> None:
    # A field's own rule runs only while it exists: without a rule on its parent, removing
    # it and setting it anew would change it in two steps.
    rules = openapi_schema()["properties"]["spec"]["x-kubernetes-validations"]
    assert rules == [
        {
            "rule": f"!has(oldSelf.{field}) || has(self.{field})",
            "message": f"{field} is immutable: it cannot be removed once set",
        }
        for field in IMMUTABLE_SPEC_FIELDS
    ]


def test_job_history_bounds() -> None:
    jobs = openapi_schema()["properties"]["status"]["properties"]["jobs"]
    assert jobs["maxItems"] >= 10
    assert jobs["x-kubernetes-list-type"] == "atomic"


# --- validation with a JSON-schema validator -------------------------------------------------


def _to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 → JSON schema for the test validator: `nullable` becomes a null type."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in out:
        out["properties"] = {k: _to_jsonschema(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _to_jsonschema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_jsonschema(out["additionalProperties"])
    return out


VALIDATOR = jsonschema.Draft202012Validator(
    _to_jsonschema(openapi_schema()), format_checker=jsonschema.FormatChecker()
)


def _valid() -> dict[str, Any]:
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": "vm1", "namespace": "ns"},
        "spec": {
            "templateID": "osac.templates.ocp_virt_vm",
            "image": {"sourceType": "registry", "sourceRef": "quay.io/fedora:40"},
            "cores": 2,
            "memoryGiB": 4,
            "bootDisk": {"sizeGiB": 20},
            "additionalDisks": [{"sizeGiB": 10, "storageClass": "fast"}],
            "runStrategy": "Always",
            "userDataSecretRef": {"name": "ud"},
            "sshKey": "ssh-ed25519 AAAA",
            "restartRequestedAt": "2026-02-10T12:00:00Z",
        },
        "status": {
            "phase": "Progressing",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Initialized"}],
            "provisionJob": {"id": "42", "state": "Running", "blockDeletionOnFailure": False},
            "jobs": [
                {
                    "jobID": "42",
                    "type": "provision",
                    "timestamp": "2026-02-10T12:00:01Z",
                    "state": "Running",
                }
            ],
        },
    }


def _with(path: str, value: Any) -> dict[str, Any]:
    obj = _valid()
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


_DELETE = object()


def test_valid_examples_pass() -> None:
    VALIDATOR.validate(_valid())
    VALIDATOR.validate({"spec": {"templateID": "sample_template"}})
    VALIDATOR.validate({"spec": {"templateID": "_x.1"}, "status": {}})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.templateID", _DELETE),
        ("spec.templateID", "1starts-with-digit"),
        ("spec.templateID", "has-dash"),
        ("spec.templateID", ""),
        ("spec.cores", 0),
        ("spec.cores", 129),
        ("spec.cores", "2"),
        ("spec.cores", 2.5),
        ("spec.memoryGiB", 0),
        ("spec.memoryGiB", 1025),
        ("spec.bootDisk.sizeGiB", 0),
        ("spec.bootDisk.sizeGiB", _DELETE),
        ("spec.additionalDisks.0.sizeGiB", 0),
        ("spec.additionalDisks", [{"sizeGiB": 1}] * 17),
        ("spec.image.sourceType", "http"),
        ("spec.image.sourceRef", ""),
        ("spec.runStrategy", "Sometimes"),
        ("spec.userDataSecretRef.name", _DELETE),
        ("spec.restartRequestedAt", 1700000000),
        ("status.phase", "Running-ish"),
        ("status.provisionJob.state", "Done"),
        ("status.jobs.0.state", "Done"),
        ("status.jobs.0.type", "restart"),
        ("status.jobs.0.timestamp", _DELETE),
        ("status.conditions.0.status", "Maybe"),
        ("status.jobs", [_valid()["status"]["jobs"][0]] * 101),
    ],
)
def test_bad_values_are_rejected(path: str, value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(_with(path, value))


def test_times_are_date_time_strings() -> None:
    # jsonschema checks date-time only with an optional extra; assert the schema says it.
    spec = openapi_schema()["properties"]["spec"]["properties"]
    assert spec["restartRequestedAt"]["type"] == "string"
    assert spec["restartRequestedAt"]["format"] == "date-time"


def test_spec_is_required_at_the_root() -> None:
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate({"metadata": {"name": "x"}})


def test_schema_is_not_mutated_by_the_test_translation() -> None:
    schema = openapi_schema()
    before = copy.deepcopy(schema)
    _to_jsonschema(schema)
    assert schema == before
