"""x-kubernetes-validations (CEL) rules: immutability on update, messages, reasons, errors."""

from __future__ import annotations

from typing import Any

from cloudkit.local.apiserver import cel
from cloudkit.local.apiserver.schema import Cause, validate


def spec_schema(prop: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"v": {**prop, "x-kubernetes-validations": rules}},
            }
        },
    }


IMMUTABLE = [{"rule": "self == oldSelf", "message": "v is immutable"}]


def test_immutable_scalar_same_passes_changed_fails_create_passes() -> None:
    schema = spec_schema({"type": "integer"}, IMMUTABLE)
    assert validate({"spec": {"v": 2}}, schema, {"spec": {"v": 2}}) == []
    assert validate({"spec": {"v": 2}}, schema) == []
    assert validate({"spec": {"v": 2}}, schema, {"spec": {}}) == []
    assert validate({"spec": {"v": 3}}, schema, {"spec": {"v": 2}}) == [
        Cause("FieldValueInvalid", 'Invalid value: "integer": v is immutable', "spec.v")
    ]


def test_immutable_object_and_list_compare_deeply() -> None:
    disk = {"type": "object", "properties": {"size": {"type": "integer"}}}
    obj_schema = spec_schema(disk, IMMUTABLE)
    assert validate({"spec": {"v": {"size": 1}}}, obj_schema, {"spec": {"v": {"size": 1}}}) == []
    changed = validate({"spec": {"v": {"size": 2}}}, obj_schema, {"spec": {"v": {"size": 1}}})
    assert [c.message for c in changed] == ['Invalid value: "object": v is immutable']
    list_schema = spec_schema({"type": "array", "items": disk}, IMMUTABLE)
    same = {"spec": {"v": [{"size": 1}, {"size": 2}]}}
    assert validate(same, list_schema, same) == []
    grown = {"spec": {"v": [{"size": 1}, {"size": 2}, {"size": 3}]}}
    assert len(validate(grown, list_schema, same)) == 1


def test_number_values_compare_as_doubles() -> None:
    schema = spec_schema({"type": "number"}, [{"rule": "self > 1.5"}])
    assert validate({"spec": {"v": 2}}, schema) == []
    assert validate({"spec": {"v": 1}}, schema) == [
        Cause("FieldValueInvalid", 'Invalid value: "number": failed rule: self > 1.5', "spec.v")
    ]


def test_rule_library_functions() -> None:
    rules = [
        {"rule": "self.name.startsWith('vm-') && size(self.name) < 10"},
        {"rule": "has(self.tags) ? self.tags.all(t, t.matches('^[a-z]+$')) : true"},
        {
            "rule": "!has(self.tags) || self.tags.exists(t, t == 'prod')",
            "reason": "FieldValueForbidden",
        },
    ]
    prop = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    schema = spec_schema(prop, rules)
    assert validate({"spec": {"v": {"name": "vm-1", "tags": ["prod"]}}}, schema) == []
    causes = validate({"spec": {"v": {"name": "x", "tags": ["Dev"]}}}, schema)
    assert [c.reason for c in causes] == [
        "FieldValueInvalid",
        "FieldValueInvalid",
        "FieldValueForbidden",
    ]
    assert causes[2].message.startswith("Forbidden: failed rule: ")


def test_timestamps_and_field_path_and_message_expression() -> None:
    prop = {
        "type": "object",
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
        },
    }
    rules = [
        {
            "rule": "self.end > self.start",
            "messageExpression": "'end must follow ' + string(self.start)",
            "fieldPath": ".end",
        }
    ]
    schema = spec_schema(prop, rules)
    ok = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    assert validate({"spec": {"v": ok}}, schema) == []
    bad = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    (cause,) = validate({"spec": {"v": bad}}, schema)
    assert cause.field == "spec.v.end"
    assert "end must follow 2026-01-02" in cause.message


def test_transition_rule_in_map_list_items_correlates_by_key() -> None:
    item = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "owner": {"type": "string", "x-kubernetes-validations": IMMUTABLE},
        },
    }
    prop = {
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }
    schema = spec_schema(prop, [])
    old = {"spec": {"v": [{"type": "A", "owner": "x"}, {"type": "B", "owner": "y"}]}}
    reordered = {"spec": {"v": [{"type": "B", "owner": "y"}, {"type": "A", "owner": "x"}]}}
    assert validate(reordered, schema, old) == []
    changed = {"spec": {"v": [{"type": "B", "owner": "z"}, {"type": "C", "owner": "q"}]}}
    assert [c.field for c in validate(changed, schema, old)] == ["spec.v[0].owner"]


def test_broken_rules_never_crash() -> None:
    schema = spec_schema(
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        [
            {"rule": "self.missing > 1"},
            {"rule": "self =="},
            {"rule": "self.a + 'x'"},
            {"rule": "1"},
        ],
    )
    causes = validate({"spec": {"v": {"a": 1}}}, schema)
    assert len(causes) == 4
    assert {c.reason for c in causes} == {"FieldValueInvalid"}
    assert all(len(c.message) < 400 and "activation" not in c.message for c in causes)


def test_null_values_skip_rules() -> None:
    schema = spec_schema({"type": "integer", "nullable": True}, IMMUTABLE)
    assert validate({"spec": {"v": None}}, schema, {"spec": {"v": 1}}) == []


def test_removal_rule_fast_path_agrees_with_celpy() -> None:
    """`!has(oldSelf.f) || has(self.f)` is answered without celpy; the same rule spelled so
    the fast path does not recognise it goes through celpy, and both must agree, null
    properties of objects counting as absent (as in Kubernetes' CEL)."""
    fast = "!has(oldSelf.v) || has(self.v)"
    slow = "(!has(oldSelf.v)) || (has(self.v))"
    obj = {"type": "object", "properties": {"v": {"type": "integer", "nullable": True}}}
    a_map = {"type": "object", "additionalProperties": {"type": "integer", "nullable": True}}
    states: list[dict[str, Any]] = [{}, {"v": None}, {"v": 1}, {"w": 2}]
    verdicts = {}
    for schema in (obj, a_map):
        for old in states:
            for new in states:
                got = cel.evaluate(fast, new, schema, old)
                assert got == cel.evaluate(slow, new, schema, old), (schema, old, new)
                verdicts[(schema is obj, str(old), str(new))] = got
    # Removing a set property, or nulling it, is refused; in a plain map null is a value.
    assert not verdicts[(True, "{'v': 1}", "{}")]
    assert not verdicts[(True, "{'v': 1}", "{'v': None}")]
    assert verdicts[(True, "{'v': None}", "{}")]
    assert verdicts[(True, "{}", "{'v': 1}")]
    assert verdicts[(False, "{'v': 1}", "{'v': None}")]
    assert not verdicts[(False, "{'v': None}", "{}")]


def test_removal_rule_at_the_parent_runs_on_updates_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"v": {"type": "integer"}},
                "x-kubernetes-validations": [
                    {"rule": "!has(oldSelf.v) || has(self.v)", "message": "v stays"}
                ],
            }
        },
    }
    assert validate({"spec": {}}, schema) == []
    assert validate({"spec": {"v": 1}}, schema, {"spec": {}}) == []
    assert validate({"spec": {}}, schema, {"spec": {"v": 1}}) == [
        Cause("FieldValueInvalid", 'Invalid value: "object": v stays', "spec")
    ]
