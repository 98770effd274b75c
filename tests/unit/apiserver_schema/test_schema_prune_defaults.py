"""Structural check, pruning and defaulting of the CRD schema engine."""

from __future__ import annotations

import copy
from typing import Any

from cloudkit.local.apiserver.schema import (
    apply_defaults,
    check_structural,
    prune,
    unknown_field_warnings,
)

DISK = {
    "type": "object",
    "properties": {
        "sizeGiB": {"type": "integer", "default": 10},
        "storageClass": {"type": "string", "nullable": True},
        "mode": {"type": "string", "default": "rw"},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "color": {"type": "string", "default": "red"},
                "disks": {"type": "array", "items": DISK},
                "labels": {"type": "object", "additionalProperties": DISK},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "partly": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "inner": {"type": "object", "properties": {"a": {"type": "integer"}}}
                    },
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {},
                },
                "settings": {
                    "type": "object",
                    "default": {},
                    "properties": {"level": {"type": "integer", "default": 3}},
                },
            },
        },
    },
}


def test_prune_drops_nested_unknowns_and_reports_paths() -> None:
    obj = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}, "bogus": 1},
        "spec": {"color": "blue", "junk": 1, "disks": [{"sizeGiB": 1, "extra": True}]},
        "top": 1,
    }
    original = copy.deepcopy(obj)
    pruned, unknown = prune(obj, SCHEMA)
    assert obj == original  # a copy: the input is untouched
    assert pruned == {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}},
        "spec": {"color": "blue", "disks": [{"sizeGiB": 1}]},
    }
    assert sorted(unknown) == ["metadata.bogus", "spec.disks[0].extra", "spec.junk", "top"]
    assert unknown_field_warnings(["spec.junk"]) == ['unknown field "spec.junk"']


def test_prune_keeps_resource_fields_even_without_schema_properties() -> None:
    obj = {"apiVersion": "v", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": 1}}
    pruned, unknown = prune(obj, {"type": "object"})
    assert pruned == {"apiVersion": "v", "kind": "K", "metadata": {"name": "n"}}
    assert unknown == ["spec"]


def test_prune_honours_preserve_unknown_maps_and_embedded_resources() -> None:
    spec = {
        "free": {"anything": {"deep": [1]}},
        "partly": {"other": 1, "inner": {"a": 1, "b": 2}},
        "labels": {"x": {"sizeGiB": 1, "nope": 0}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "y": 2},
    }
    pruned, unknown = prune({"spec": spec}, SCHEMA)
    assert pruned["spec"] == {
        "free": {"anything": {"deep": [1]}},
        "partly": {"other": 1, "inner": {"a": 1}},
        "labels": {"x": {"sizeGiB": 1}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
    }
    assert sorted(unknown) == [
        "spec.labels.x.nope",
        "spec.partly.inner.b",
        "spec.template.metadata.x",
        "spec.template.y",
    ]


def test_defaults_fill_existing_parents_array_items_and_map_values() -> None:
    obj = {"metadata": {"name": "a"}, "spec": {"disks": [{}, {"sizeGiB": 1}], "labels": {"k": {}}}}
    result = apply_defaults(obj, SCHEMA)
    assert result["spec"] == {
        "color": "red",
        "disks": [{"sizeGiB": 10, "mode": "rw"}, {"sizeGiB": 1, "mode": "rw"}],
        "labels": {"k": {"sizeGiB": 10, "mode": "rw"}},
        "settings": {"level": 3},
    }
    assert obj["spec"] == {"disks": [{}, {"sizeGiB": 1}], "labels": {"k": {}}}
    assert apply_defaults({"metadata": {}}, SCHEMA) == {"metadata": {}}  # no spec: no defaults


def test_defaults_drop_nulls_unless_nullable() -> None:
    obj = {"spec": {"color": None, "disks": [{"sizeGiB": None, "storageClass": None}]}}
    result = apply_defaults(obj, SCHEMA)
    assert result["spec"]["color"] == "red"
    assert result["spec"]["disks"] == [{"sizeGiB": 10, "storageClass": None, "mode": "rw"}]


def test_structural_schema_accepted() -> None:
    assert check_structural(SCHEMA) == []


def test_structural_violations_have_schema_relative_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "properties": {
                    "a": {
                        "type": "object",
                        "properties": {},
                        "additionalProperties": {"type": "string"},
                    },
                    "b": {"$ref": "#/definitions/x", "type": "string"},
                    "c": {"type": "array", "items": {"properties": {}}},
                    "d": {"type": "thing"},
                    "e": {"x-kubernetes-int-or-string": True},
                }
            }
        },
    }
    causes = {(c.reason, c.field) for c in check_structural(schema)}
    assert causes == {
        ("FieldValueRequired", "properties[spec].type"),
        ("FieldValueForbidden", "properties[spec].properties[a].additionalProperties"),
        ("FieldValueForbidden", "properties[spec].properties[b].$ref"),
        ("FieldValueRequired", "properties[spec].properties[c].items.type"),
        ("FieldValueNotSupported", "properties[spec].properties[d].type"),
    }
    assert [c.field for c in check_structural({"properties": {}})] == ["type"]


def test_defaults_must_be_valid_and_known() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "c": {"type": "string", "enum": ["a"], "default": "b"},
                    "o": {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}},
                        "default": {"x": 1, "y": 2},
                    },
                    "ok": {"type": "integer", "minimum": 1, "default": 1},
                },
            }
        },
    }
    causes = [(c.reason, c.field) for c in check_structural(schema)]
    assert causes == [
        ("FieldValueNotSupported", "properties[spec].properties[c].default"),
        ("FieldValueInvalid", "properties[spec].properties[o].default"),
    ]
