"""Validation rule kinds of the CRD schema engine: reasons, messages and field paths."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.local.apiserver.schema import Cause, validate


def obj_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}


def check(spec: Any, **props: Any) -> list[Cause]:
    return validate({"spec": spec}, obj_schema(**props))


def only(causes: list[Cause]) -> Cause:
    assert len(causes) == 1, causes
    return causes[0]


def test_integer_type_mismatch_is_type_invalid() -> None:
    cause = only(check({"cores": "string"}, cores={"type": "integer"}))
    assert cause == Cause(
        "FieldValueTypeInvalid",
        'Invalid value: "string": spec.cores in body must be of type integer: "string"',
        "spec.cores",
    )


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("integer", 3, 3.5),
        ("integer", 2.0, True),
        ("number", 3.5, "3.5"),
        ("number", 3, False),
        ("string", "x", 1),
        ("boolean", False, 0),
        ("object", {}, []),
        ("array", [], {}),
    ],
)
def test_types(kind: str, good: Any, bad: Any) -> None:
    assert check({"v": good}, v={"type": kind}) == []
    assert only(check({"v": bad}, v={"type": kind})).reason == "FieldValueTypeInvalid"


def test_null_allowed_only_when_nullable() -> None:
    cause = only(check({"v": None}, v={"type": "string"}))
    assert cause.reason == "FieldValueTypeInvalid"
    assert cause.message == 'Invalid value: "null": spec.v in body must be of type string: "null"'
    assert check({"v": None}, v={"type": "string", "nullable": True, "minLength": 3}) == []


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("int32", 2**31 - 1, 2**31),
        ("int32", -(2**31), -(2**31) - 1),
        ("int64", 2**63 - 1, 2**63),
    ],
)
def test_integer_formats(fmt: str, good: int, bad: int) -> None:
    props = {"v": {"type": "integer", "format": fmt}}
    assert check({"v": good}, **props) == []
    cause = only(check({"v": bad}, **props))
    assert cause.reason == "FieldValueTypeInvalid" and f"must be of type {fmt}" in cause.message


@pytest.mark.parametrize("good", ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+02:00"])
def test_date_time_accepts_rfc3339(good: str) -> None:
    assert check({"t": good}, t={"type": "string", "format": "date-time"}) == []


@pytest.mark.parametrize("bad", ["yesterday", "2026-01-02", "2026-13-02T03:04:05Z"])
def test_date_time_rejects_others(bad: str) -> None:
    cause = only(check({"t": bad}, t={"type": "string", "format": "date-time"}))
    assert cause.reason == "FieldValueTypeInvalid"
    assert (
        cause.message
        == f'Invalid value: "{bad}": spec.t in body must be of type date-time: "{bad}"'
    )


def test_required_fields() -> None:
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["a", "b"], "properties": {}}},
    }
    assert validate({}, schema) == [Cause("FieldValueRequired", "Required value", "spec")]
    causes = validate({"spec": {"a": 1}}, schema)
    assert causes == [Cause("FieldValueRequired", "Required value", "spec.b")]


def test_enum_message_lists_supported_values() -> None:
    cause = only(check({"s": "X"}, s={"type": "string", "enum": ["Always", "Halted"]}))
    assert cause == Cause(
        "FieldValueNotSupported",
        'Unsupported value: "X": supported values: "Always", "Halted"',
        "spec.s",
    )
    assert only(check({"n": 3}, n={"type": "integer", "enum": [1, 2]})).message == (
        "Unsupported value: 3: supported values: 1, 2"
    )


@pytest.mark.parametrize(
    ("props", "value", "detail"),
    [
        ({"minimum": 1}, 0, "should be greater than or equal to 1"),
        ({"maximum": 10}, 11, "should be less than or equal to 10"),
        ({"minimum": 1, "exclusiveMinimum": True}, 1, "should be greater than 1"),
        ({"maximum": 10, "exclusiveMaximum": True}, 10, "should be less than 10"),
    ],
)
def test_numeric_bounds(props: dict[str, Any], value: int, detail: str) -> None:
    cause = only(check({"n": value}, n={"type": "integer", **props}))
    assert cause == Cause(
        "FieldValueInvalid", f"Invalid value: {value}: spec.n in body {detail}", "spec.n"
    )


def test_string_length_and_pattern() -> None:
    props = {"s": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"}}
    assert check({"s": "abc"}, **props) == []
    assert only(check({"s": "a"}, **props)).message == (
        'Invalid value: "a": spec.s in body should be at least 2 chars long'
    )
    assert only(check({"s": "abcde"}, **props)).message == (
        'Invalid value: "abcde": spec.s in body should be at most 4 chars long'
    )
    cause = only(check({"s": "AB"}, **props))
    assert cause.reason == "FieldValueInvalid"
    assert cause.message == "Invalid value: \"AB\": spec.s in body should match '^[a-z]+$'"


def test_item_and_property_counts() -> None:
    props = {
        "l": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
        "m": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "minProperties": 1,
            "maxProperties": 1,
        },
    }
    assert check({"l": [1], "m": {"a": "x"}}, **props) == []
    causes = check({"l": [1, 2, 3], "m": {}}, **props)
    assert [(c.reason, c.field) for c in causes] == [
        ("FieldValueInvalid", "spec.l"),
        ("FieldValueInvalid", "spec.m"),
    ]
    assert "should have at most 2 items" in causes[0].message
    assert "should have at least 1 properties" in causes[1].message
    assert only(check({"m": {"a": 1}}, **props)).field == "spec.m.a"


def test_list_type_set_and_map_duplicates() -> None:
    props = {
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "conds": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "properties": {"type": {"type": "string"}}},
        },
    }
    good = {"tags": ["a", "b"], "conds": [{"type": "A"}, {"type": "B"}]}
    assert check(good, **props) == []
    causes = check({"tags": ["a", "b", "a"], "conds": [{"type": "A"}, {"type": "A"}]}, **props)
    assert [(c.reason, c.field) for c in causes] == [
        ("FieldValueDuplicate", "spec.tags[2]"),
        ("FieldValueDuplicate", "spec.conds[1]"),
    ]
    assert causes[0].message == 'Duplicate value: "a"'


def test_nested_paths_with_indexes() -> None:
    props = {
        "disks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sizeGiB"],
                "properties": {"sizeGiB": {"type": "integer", "minimum": 1}},
            },
        }
    }
    causes = check({"disks": [{"sizeGiB": 1}, {"sizeGiB": 0}, {}]}, **props)
    assert [(c.reason, c.field) for c in causes] == [
        ("FieldValueInvalid", "spec.disks[1].sizeGiB"),
        ("FieldValueRequired", "spec.disks[2].sizeGiB"),
    ]
    assert causes[0].message == (
        "Invalid value: 0: spec.disks[1].sizeGiB in body should be greater than or equal to 1"
    )


def test_int_or_string_and_preserve_unknown_nodes() -> None:
    props = {
        "port": {"x-kubernetes-int-or-string": True},
        "free": {"x-kubernetes-preserve-unknown-fields": True},
    }
    assert check({"port": 80, "free": {"any": [1, "x"]}}, **props) == []
    assert check({"port": "http"}, **props) == []
    assert only(check({"port": 1.5}, **props)).reason == "FieldValueTypeInvalid"


def test_combinators() -> None:
    props = {
        "v": {
            "type": "integer",
            "anyOf": [{"minimum": 10}, {"maximum": 0}],
            "not": {"enum": [20]},
        }
    }
    assert check({"v": 15}, **props) == []
    assert check({"v": -1}, **props) == []
    assert "anyOf" in only(check({"v": 5}, **props)).message
    assert "(not)" in only(check({"v": 20}, **props)).message


def test_metadata_is_not_validated_by_the_schema() -> None:
    schema = {"type": "object", "properties": {"metadata": {"type": "object"}}}
    assert validate({"metadata": {"name": "x", "labels": {"a": "b"}}}, schema) == []
