"""Validation of custom resources against a structural CRD schema (with CEL rules), pure.

Causes carry kube-apiserver's reasons and wording (kube-openapi messages such as
`Invalid value: 0: spec.cores in body should be greater than or equal to 1`), with field
paths like `spec.additionalDisks[0].sizeGiB`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from cloudkit.local.apiserver import cel

Schema = dict[str, Any]

INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TYPE_INVALID = "FieldValueTypeInvalid"
DUPLICATE = "FieldValueDuplicate"

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Cause:
    """One validation failure, as it appears in a Status' details.causes."""

    reason: str
    message: str
    field: str


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def fmt(value: Any) -> str:
    """A value as Go's apimachinery prints it in messages (strings quoted, numbers bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return json_type(value) == kind


def _format_ok(value: Any, fmt_name: str) -> bool:
    if fmt_name in _INT_RANGES and isinstance(value, int | float):
        low, high = _INT_RANGES[fmt_name]
        return low <= value <= high
    if not isinstance(value, str):
        return True
    if fmt_name == "date-time":
        if not _DATE_TIME.match(value):
            return False
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            return False
    elif fmt_name == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # an RE2 construct Python lacks: do not reject objects over it
        return None


class _Validator:
    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def add(self, reason: str, message: str, field: str) -> None:
        self.causes.append(Cause(reason, message, field))

    def invalid(self, value: Any, path: str, detail: str) -> None:
        self.add(INVALID, f"Invalid value: {fmt(value)}: {path} in body {detail}", path)

    def node(self, value: Any, schema: Schema, path: str, old: Any, resource: bool) -> None:
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if value is None:
            if not schema.get("nullable") and kind:
                self.type_invalid(path, kind, "null")
            return
        if schema.get("x-kubernetes-int-or-string"):
            if not (_type_ok(value, "integer") or isinstance(value, str)):
                self.type_invalid(path, "integer-or-string", json_type(value))
                return
        elif kind and not _type_ok(value, kind):
            self.type_invalid(path, kind, json_type(value))
            return
        fmt_name = schema.get("format")
        if isinstance(fmt_name, str) and not _format_ok(value, fmt_name):
            self.add(
                TYPE_INVALID,
                f"Invalid value: {fmt(value)}: {path} in body must be of type {fmt_name}: "
                f"{fmt(value)}",
                path,
            )
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_same(value, e) for e in enum):
            supported = ", ".join(fmt(e) for e in enum)
            self.add(
                NOT_SUPPORTED,
                f"Unsupported value: {fmt(value)}: supported values: {supported}",
                path,
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.numeric(value, schema, path)
        elif isinstance(value, str):
            self.string(value, schema, path)
        elif isinstance(value, list):
            self.array(value, schema, path, old)
        elif isinstance(value, dict):
            self.obj(value, schema, path, old, resource)
        self.combinators(value, schema, path, old)
        self.rules(value, schema, path, old)

    def type_invalid(self, path: str, kind: str, actual: str) -> None:
        self.add(
            TYPE_INVALID,
            f'Invalid value: "{actual}": {path} in body must be of type {kind}: "{actual}"',
            path,
        )

    def numeric(self, value: float, schema: Schema, path: str) -> None:
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float):
            if schema.get("exclusiveMinimum") and value <= low:
                self.invalid(value, path, f"should be greater than {fmt(low)}")
            elif value < low:
                self.invalid(value, path, f"should be greater than or equal to {fmt(low)}")
        if isinstance(high, int | float):
            if schema.get("exclusiveMaximum") and value >= high:
                self.invalid(value, path, f"should be less than {fmt(high)}")
            elif value > high:
                self.invalid(value, path, f"should be less than or equal to {fmt(high)}")
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0 and (value / multiple) % 1:
            self.invalid(value, path, f"should be a multiple of {fmt(multiple)}")

    def string(self, value: str, schema: Schema, path: str) -> None:
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            self.invalid(value, path, f"should be at least {low} chars long")
        if isinstance(high, int) and len(value) > high:
            self.invalid(value, path, f"should be at most {high} chars long")
        pattern = schema.get("pattern")
        regex = _regex(pattern) if isinstance(pattern, str) else None
        if regex is not None and not regex.search(value):
            self.invalid(value, path, f"should match '{pattern}'")

    def array(self, value: list[Any], schema: Schema, path: str, old: Any) -> None:
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            self.invalid(len(value), path, f"should have at least {low} items")
        if isinstance(high, int) and len(value) > high:
            self.invalid(len(value), path, f"should have at most {high} items")
        list_type = schema.get("x-kubernetes-list-type")
        keys = [k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str)]
        old_items = old if isinstance(old, list) else []
        old_by_key: dict[str, Any] = {}
        if list_type == "map" and keys:
            old_by_key = {_map_key(o, keys): o for o in old_items if isinstance(o, dict)}
        seen: set[str] = set()
        items = schema.get("items")
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            old_item: Any = None
            if list_type == "set":
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    self.add(DUPLICATE, f"Duplicate value: {fmt(item)}", item_path)
                seen.add(key)
                old_item = item if any(_same(item, o) for o in old_items) else None
            elif list_type == "map" and keys and isinstance(item, dict):
                key = _map_key(item, keys)
                if key in seen:
                    self.add(DUPLICATE, f"Duplicate value: {key}", item_path)
                seen.add(key)
                old_item = old_by_key.get(key)
            if isinstance(items, dict):
                self.node(item, items, item_path, old_item, bool(items.get(_EMBEDDED)))

    def obj(
        self, value: dict[str, Any], schema: Schema, path: str, old: Any, resource: bool
    ) -> None:
        low, high = schema.get("minProperties"), schema.get("maxProperties")
        if isinstance(low, int) and len(value) < low:
            self.invalid(len(value), path, f"should have at least {low} properties")
        if isinstance(high, int) and len(value) > high:
            self.invalid(len(value), path, f"should have at most {high} properties")
        for name in schema.get("required") or []:
            if isinstance(name, str) and name not in value:
                self.add(REQUIRED, "Required value", child(path, name))
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if resource and key == "metadata":
                continue  # ObjectMeta is validated by the server, not by the CRD schema
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if isinstance(sub, dict):
                sub_path = child(path, key)
                self.node(item, sub, sub_path, old_map.get(key), bool(sub.get(_EMBEDDED)))

    def combinators(self, value: Any, schema: Schema, path: str, old: Any) -> None:
        for sub in schema.get("allOf") or []:
            self.node(value, sub, path, old, False)
        any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
        if any_of and not any(_passes(value, s, path) for s in any_of):
            detail = "must validate at least one schema (anyOf)"
            self.add(INVALID, f"Invalid value: {fmt(value)}: {detail}", path)
        one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
        if one_of and sum(_passes(value, s, path) for s in one_of) != 1:
            self.add(
                INVALID,
                f"Invalid value: {fmt(value)}: must validate one and only one schema (oneOf)",
                path,
            )
        negated = schema.get("not")
        if isinstance(negated, dict) and _passes(value, negated, path):
            self.add(
                INVALID, f"Invalid value: {fmt(value)}: must not validate the schema (not)", path
            )

    def rules(self, value: Any, schema: Schema, path: str, old: Any) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            expr = rule.get("rule") if isinstance(rule, dict) else None
            if not isinstance(expr, str):
                continue
            transition = cel.is_transition_rule(expr)
            if transition and old is None:
                continue  # transition rules apply only to updates of an existing value
            prior = old if transition else None
            kind = schema.get("type") or json_type(value)
            try:
                ok = cel.evaluate(expr, value, schema, prior)
            except cel.CelError as exc:
                self.add(INVALID, f'Invalid value: "{kind}": rule "{expr}" failed: {exc}', path)
                continue
            if ok:
                continue
            text = rule.get("message") or f"failed rule: {expr}"
            if isinstance(rule.get("messageExpression"), str):
                text = cel.message(rule["messageExpression"], value, schema, prior) or text
            self.add_rule_cause(str(rule.get("reason") or INVALID), str(text), kind, path, rule)

    def add_rule_cause(self, reason: str, text: str, kind: str, path: str, rule: Schema) -> None:
        field = path
        sub = rule.get("fieldPath")
        if isinstance(sub, str) and sub:
            field = f"{path}{sub}" if sub[0] in ".[" else child(path, sub)
            field = field.lstrip(".")
        if reason == REQUIRED:
            self.add(reason, f"Required value: {text}", field)
        elif reason == FORBIDDEN:
            self.add(reason, f"Forbidden: {text}", field)
        elif reason == DUPLICATE:
            self.add(reason, f'Duplicate value: "{kind}": {text}', field)
        else:
            self.add(INVALID, f'Invalid value: "{kind}": {text}', field)


_EMBEDDED = "x-kubernetes-embedded-resource"


def _map_key(item: dict[str, Any], keys: list[str]) -> str:
    return json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"), sort_keys=True)


def _passes(value: Any, schema: Schema, path: str) -> bool:
    probe = _Validator()
    probe.node(value, schema, path, None, False)
    return not probe.causes


def validate(obj: dict[str, Any], schema: Schema, old: dict[str, Any] | None = None) -> list[Cause]:
    """Every violation of `schema` by `obj`; transition rules compare against `old`."""
    validator = _Validator()
    validator.node(obj, schema, "", old, True)
    return validator.causes


def validate_value(value: Any, schema: Schema, path: str) -> list[Cause]:
    """Violations of a single value (a schema `default`) reported under `path`."""
    validator = _Validator()
    validator.node(value, schema, path, None, False)
    return validator.causes
