"""The ComputeInstance CustomResourceDefinition, generated from the pydantic models.

The models are the single source of the resource's shape; this module turns their JSON schema
into a Kubernetes *structural* schema (apiextensions.k8s.io/v1): every `$ref` inlined,
`anyOf [X, null]` folded into X with `nullable: true`, no `title`/`default`, no
`additionalProperties` (models accept unknown fields for forward compatibility, but the API
server prunes them — that is the Kubernetes contract). Every description, down to the last
property, is a model's or a field's docstring: `kubectl explain` shows the models' docs.
`cloudkit crds` prints `render_crds()`, and deploy/crds/ holds that exact text.
"""

from __future__ import annotations

from typing import Any

import yaml

from cloudkit.api import names
from cloudkit.api.models import IMMUTABLE_SPEC_FIELDS, ComputeInstance

CRD_NAME = f"{names.PLURAL}.{names.GROUP}"
MAX_JOB_RECORDS = 100
"""Schema bound on status.jobs[]; the operator trims far below it (default 10)."""

_INT32_MAX = 2**31 - 1
# JSON-schema keywords the structural schema keeps; everything else pydantic emits is dropped.
_KEPT = (
    "description",
    "enum",
    "format",
    "maxItems",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "pattern",
)


class SchemaError(ValueError):
    """The models produced a JSON schema that has no structural equivalent."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref` and fold `anyOf [X, null]`; sibling keys (description) win over the def."""
    node = dict(node)
    nullable = False
    if "anyOf" in node:
        options = node.pop("anyOf")
        choices = [c for c in options if c.get("type") != "null"]
        nullable = len(choices) < len(options)
        if len(choices) != 1:
            raise SchemaError(f"anyOf with {len(choices)} non-null choices has no structural form")
        node = {**choices[0], **node}
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        node = {**_resolve(defs[name], defs), **node}
    if nullable:
        node["nullable"] = True
    return node


def _structural(raw: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(raw, defs)
    if "const" in node:  # single-value Literal
        node.setdefault("enum", [node.pop("const")])
    out: dict[str, Any] = {k: node[k] for k in _KEPT if k in node}
    kind = node.get("type")
    if kind is None and "enum" in out:
        kind = "string"
    if kind not in ("object", "array", "string", "integer", "number", "boolean"):
        raise SchemaError(f"no structural type for {raw!r}")
    out["type"] = kind
    if node.get("nullable"):
        out["nullable"] = True
    if kind == "integer":
        bounded = "maximum" in out and out["maximum"] <= _INT32_MAX
        out["format"] = "int32" if bounded else "int64"
    if kind == "array":
        out["items"] = _structural(node["items"], defs)
    if kind == "object":
        props = node.get("properties", {})
        if props:
            out["properties"] = {k: _structural(v, defs) for k, v in props.items()}
        elif isinstance(node.get("additionalProperties"), dict):
            # a plain map (dict[str, X]); with properties it would not be structural
            out["additionalProperties"] = _structural(node["additionalProperties"], defs)
        if node.get("required"):
            out["required"] = sorted(node["required"])
    return out


def _immutable(field: str) -> list[dict[str, str]]:
    return [{"rule": "self == oldSelf", "message": f"{field} is immutable"}]


def _not_removable(field: str) -> dict[str, str]:
    """A field's own `self == oldSelf` rule only runs while the field exists, so removing it
    and then setting it anew would change it in two steps; this rule, on its parent, forbids
    the removal (a transition rule: it runs on updates only)."""
    return {
        "rule": f"!has(oldSelf.{field}) || has(self.{field})",
        "message": f"{field} is immutable: it cannot be removed once set",
    }


def openapi_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of v1alpha1, derived from `ComputeInstance`."""
    raw = ComputeInstance.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.get("$defs", {})
    props = raw["properties"]
    spec = _structural(props["spec"], defs)
    for field in IMMUTABLE_SPEC_FIELDS:
        spec["properties"][field]["x-kubernetes-validations"] = _immutable(field)
    spec["x-kubernetes-validations"] = [_not_removable(f) for f in IMMUTABLE_SPEC_FIELDS]
    status = _structural(props["status"], defs)
    jobs = status["properties"]["jobs"]
    jobs["maxItems"] = MAX_JOB_RECORDS
    jobs["x-kubernetes-list-type"] = "atomic"
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return {
        "type": "object",
        "description": raw["description"],
        "properties": {
            "apiVersion": {"type": "string", "description": props["apiVersion"]["description"]},
            "kind": {"type": "string", "description": props["kind"]["description"]},
            # Only the type: kube-apiserver refuses a CRD whose metadata schema says anything
            # else (a description included), and publishes ObjectMeta's own docs for it.
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }


def _column(
    name: str, path: str, kind: str = "string", *, wide: bool = False
) -> dict[str, str | int]:
    """A printer column; `wide` ones show only with `kubectl get -o wide` (priority 1)."""
    column: dict[str, str | int] = {"name": name, "jsonPath": path, "type": kind}
    if wide:
        column["priority"] = 1
    return column


def crd_manifest() -> dict[str, Any]:
    """The CustomResourceDefinition object for computeinstances.cloudkit.openshift.io."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": names.GROUP,
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": ["cloudkit"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        _column("Template", ".spec.templateID"),
                        _column("Phase", ".status.phase"),
                        _column("Provision", ".status.provisionJob.state"),
                        _column("Deprovision", ".status.deprovisionJob.state"),
                        _column("Age", ".metadata.creationTimestamp", "date"),
                        _column("IP", ".status.ipAddress", wide=True),
                    ],
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Shared sub-lists (the JobState enum) are written out in full, never as &id anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crds() -> str:
    """YAML of every CRD cloudkit serves: sorted keys, stable across runs, newline-terminated."""
    text = yaml.dump(
        crd_manifest(),
        Dumper=_NoAliasDumper,
        sort_keys=True,
        default_flow_style=False,
        width=100,
    )
    return "---\n" + text
