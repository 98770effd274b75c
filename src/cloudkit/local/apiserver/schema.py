"""CRD OpenAPI v3 schema handling: structural check, pruning, defaulting, validation (pure).

The server runs prune → default → validate on every write of a custom resource; validation
(and its CEL rules) lives in schema_validate.py and cel.py, re-exported here.

Known gaps against kube-apiserver: no CEL cost budgets, no `optionalOldSelf`, patterns use
Python's `re` (not RE2), item/length limits report FieldValueInvalid (upstream: TooMany/TooLong),
transition rules are not correlated inside atomic lists, and rules are skipped on null values.
"""

from __future__ import annotations

import copy
from typing import Any

from cloudkit.local.apiserver.schema_validate import (
    FORBIDDEN,
    NOT_SUPPORTED,
    REQUIRED,
    Cause,
    child,
    validate,
    validate_value,
)

__all__ = [
    "Cause",
    "apply_defaults",
    "check_structural",
    "prune",
    "unknown_field_warnings",
    "validate",
]

_TYPES = ("object", "array", "string", "integer", "number", "boolean")
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED = "x-kubernetes-embedded-resource"
_INT_OR_STRING = "x-kubernetes-int-or-string"
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_RESOURCE_FIELDS = ("apiVersion", "kind", "metadata")


# -- structural schema -------------------------------------------------------------------------


def check_structural(schema: dict[str, Any]) -> list[Cause]:
    """Why `schema` is not structural; paths are relative to the schema root ("" is the root)."""
    causes: list[Cause] = []
    if not isinstance(schema, dict):
        return [Cause("FieldValueInvalid", "Invalid value: must be an object", "")]
    if schema.get("type") not in (None, "object"):
        causes.append(
            Cause("FieldValueInvalid", "Invalid value: must be object at the root", "type")
        )
    _structural(schema, "", causes, skeleton=True)
    return causes


def _structural(node: Any, path: str, causes: list[Cause], *, skeleton: bool) -> None:
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        causes.append(Cause(FORBIDDEN, "Forbidden: $ref is not allowed", child(path, "$ref")))
    kind = node.get("type")
    if kind is not None and kind not in _TYPES:
        supported = ", ".join(f'"{t}"' for t in _TYPES)
        causes.append(
            Cause(
                NOT_SUPPORTED,
                f'Unsupported value: "{kind}": supported values: {supported}',
                child(path, "type"),
            )
        )
    # Value validations (allOf & co.) may omit types; the skeleton (properties/items) may not.
    if skeleton and kind is None and not node.get(_INT_OR_STRING) and not node.get(_PRESERVE):
        causes.append(
            Cause(
                REQUIRED,
                "Required value: must not be empty for specified object fields",
                child(path, "type"),
            )
        )
    extra = node.get("additionalProperties")
    if "properties" in node and (isinstance(extra, dict) or extra is True):
        causes.append(
            Cause(
                FORBIDDEN,
                "Forbidden: additionalProperties and properties are mutual exclusive",
                child(path, "additionalProperties"),
            )
        )
    if skeleton and "default" in node:
        _check_default(node, child(path, "default"), causes)
    for name, sub in (node.get("properties") or {}).items():
        _structural(sub, child(path, f"properties[{name}]"), causes, skeleton=skeleton)
    items = node.get("items")
    if isinstance(items, list):
        causes.append(
            Cause(
                FORBIDDEN,
                "Forbidden: items must be a schema object, not an array",
                child(path, "items"),
            )
        )
    elif items is not None:
        _structural(items, child(path, "items"), causes, skeleton=skeleton)
    elif kind == "array" and skeleton:
        causes.append(Cause(REQUIRED, "Required value: must be specified", child(path, "items")))
    if isinstance(extra, dict):
        _structural(extra, child(path, "additionalProperties"), causes, skeleton=skeleton)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or []):
            _structural(sub, child(path, f"{key}[{i}]"), causes, skeleton=False)
    if isinstance(node.get("not"), dict):
        _structural(node["not"], child(path, "not"), causes, skeleton=False)


def _check_default(node: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """A default must survive pruning unchanged and pass validation, as upstream requires."""
    default = node["default"]
    _, unknown = prune({"value": default}, {"type": "object", "properties": {"value": node}})
    if unknown:
        names = ", ".join(u.removeprefix("value").lstrip(".") for u in unknown)
        causes.append(
            Cause(
                "FieldValueInvalid", f"Invalid value: must not have unknown fields: {names}", path
            )
        )
    causes.extend(validate_value(default, node, path))


# -- pruning -----------------------------------------------------------------------------------


def prune(
    obj: dict[str, Any], schema: dict[str, Any], *, in_place: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """`obj` without fields the schema does not know, and their paths: a deep copy, or `obj`
    itself changed when `in_place` (the write path's object is already its own copy, and a
    deep copy of a whole object per write cost more than the pruning)."""
    result = obj if in_place else copy.deepcopy(obj)
    unknown: list[str] = []
    _prune(result, schema, "", unknown, resource=True)
    return result, unknown


def _prune(value: Any, schema: Any, path: str, unknown: list[str], *, resource: bool) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", unknown, resource=bool(items.get(_EMBEDDED)))
        return
    if not isinstance(value, dict):
        return
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    preserve = bool(schema.get(_PRESERVE))
    for key in list(value):
        sub_path = child(path, key)
        if resource and key in _RESOURCE_FIELDS:
            if key == "metadata" and isinstance(value[key], dict):
                _prune_meta(value[key], sub_path, unknown)
            continue
        if key in props:
            sub = props[key]
            embedded = isinstance(sub, dict) and bool(sub.get(_EMBEDDED))
            _prune(value[key], sub, sub_path, unknown, resource=embedded)
        elif isinstance(extra, dict) and not props:
            _prune(value[key], extra, sub_path, unknown, resource=bool(extra.get(_EMBEDDED)))
        elif preserve or extra is True:
            continue
        else:
            del value[key]
            unknown.append(sub_path)


def _prune_meta(meta: dict[str, Any], path: str, unknown: list[str]) -> None:
    for key in list(meta):
        if key not in OBJECT_META_FIELDS:
            del meta[key]
            unknown.append(child(path, key))


def unknown_field_warnings(paths: list[str]) -> list[str]:
    """Warning texts for pruned fields, worded like the real server's."""
    return [f'unknown field "{p}"' for p in paths]


# -- defaulting --------------------------------------------------------------------------------


def apply_defaults(
    obj: dict[str, Any], schema: dict[str, Any], *, in_place: bool = False
) -> dict[str, Any]:
    """`default`s filled into existing parents, nulls dropped unless nullable: in a deep copy,
    or in `obj` itself when `in_place` (see prune)."""
    result = obj if in_place else copy.deepcopy(obj)
    _default(result, schema, resource=True)
    return result


def _default(value: Any, schema: Any, *, resource: bool) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                _default(item, items, resource=bool(items.get(_EMBEDDED)))
        return
    if not isinstance(value, dict):
        return
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key in list(value):
        if resource and key in _RESOURCE_FIELDS:
            continue
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if not isinstance(sub, dict):
            continue
        if value[key] is None and not sub.get("nullable"):
            # A null for a non-nullable field is dropped, so its default (if any) applies.
            del value[key]
    for key, sub in props.items():
        if not isinstance(sub, dict) or (resource and key in _RESOURCE_FIELDS):
            continue
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _default(value[key], sub, resource=bool(sub.get(_EMBEDDED)))
    if isinstance(extra, dict):
        for key in value:
            if key not in props:
                _default(value[key], extra, resource=bool(extra.get(_EMBEDDED)))
