"""CEL evaluation for CRD `x-kubernetes-validations` rules (via celpy), pure and crash-free.

Programs are compiled once per expression and cached; values are converted to CEL types with
the schema in hand, because CEL refuses to compare an int with a double (`type: number` values
become doubles) and treats `format: date-time` strings as timestamps, as Kubernetes does.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

_OLD_SELF = re.compile(r"\boldSelf\b")
# celpy error texts embed the whole activation (every bound value); keep only the gist.
_MAX_ERROR = 200


_IMMUTABLE_FORMS = frozenset({"self==oldSelf", "oldSelf==self"})
# `!has(oldSelf.f) || has(self.f)`: "f cannot be removed once set", on f's parent.
_NOT_REMOVABLE = re.compile(r"!has\(oldSelf\.([A-Za-z_][A-Za-z0-9_]*)\)\|\|has\(self\.\1\)")


def json_equal(a: Any, b: Any) -> bool:
    """Deep JSON equality as CEL sees it (true is not 1; 1 equals 1.0 after conversion)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


class CelError(Exception):
    """A rule that cannot be compiled or evaluated; the text is short and safe to return."""


@lru_cache(maxsize=1)
def _env() -> celpy.Environment:
    return celpy.Environment()


def _short(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    text = text.split(" (in activation", 1)[0].strip()
    return text[:_MAX_ERROR] or type(exc).__name__


@lru_cache(maxsize=512)
def _program(rule: str) -> Any:
    env = _env()
    try:
        return env.program(env.compile(rule))
    except Exception as exc:  # celpy raises several unrelated error types
        raise CelError(f"compilation failed: {_parse_detail(exc)}") from None


def _parse_detail(exc: Exception) -> str:
    """celpy parse errors are the source with a caret line under the offending column."""
    lines = _short(exc).splitlines()
    if len(lines) >= 2 and lines[-1].strip() == "^":
        return f"syntax error at column {lines[-1].index('^') + 1}"
    return " ".join(" ".join(lines).split())[:_MAX_ERROR]


def is_transition_rule(rule: str) -> bool:
    """Rules mentioning oldSelf are evaluated only on update, when an old value exists."""
    return bool(_OLD_SELF.search(rule))


def _timestamp(text: str) -> Any:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return celtypes.StringType(text)
    return celtypes.TimestampType(parsed)


def to_cel(value: Any, schema: dict[str, Any] | None) -> Any:
    """Converts a JSON value to celpy types, guided by its schema node."""
    schema = schema or {}
    kind = schema.get("type")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int) and kind == "number":
        return celtypes.DoubleType(float(value))
    if isinstance(value, str) and kind == "string" and schema.get("format") == "date-time":
        return _timestamp(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else None
        # As in Kubernetes' CEL, a null property of an object (not of a map) is absent:
        # has(self.f) is false for `f: null`, so null cannot get around a removal rule.
        return celtypes.MapType(
            {
                celtypes.StringType(k): to_cel(v, props.get(k, extra))
                for k, v in value.items()
                if v is not None or not props
            }
        )
    if isinstance(value, list):
        items = schema.get("items")
        items = items if isinstance(items, dict) else None
        return celtypes.ListType([to_cel(v, items) for v in value])
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    return celtypes.StringType(str(value))


def _has(value: Any, name: str, schema: dict[str, Any]) -> bool:
    """CEL's has(x.name) on a JSON value, null properties of objects being absent (to_cel)."""
    if not isinstance(value, dict) or name not in value:
        return False
    return value[name] is not None or not schema.get("properties")


def evaluate(rule: str, value: Any, schema: dict[str, Any], old: Any = None) -> bool:
    """True when the rule holds for `self` (and `oldSelf`); CelError when it cannot tell."""
    compact = "".join(rule.split())
    if old is not None and compact in _IMMUTABLE_FORMS:
        # The common immutability rules, answered without celpy (~1 ms per rule per write).
        return json_equal(value, old)
    removal = _NOT_REMOVABLE.fullmatch(compact)
    if old is not None and removal is not None:
        name = removal.group(1)
        return not _has(old, name, schema) or _has(value, name, schema)
    program = _program(rule)
    activation: dict[str, Any] = {"self": to_cel(value, schema)}
    if old is not None:
        activation["oldSelf"] = to_cel(old, schema)
    try:
        result = program.evaluate(activation)
    except Exception as exc:  # evaluation errors must never crash a write
        raise CelError(_short(exc)) from None
    if isinstance(result, Exception):
        raise CelError(_short(result))
    if isinstance(result, (bool, celtypes.BoolType)):
        return bool(result)
    raise CelError(f"rule did not evaluate to a bool: {type(result).__name__}")


def message(expression: str, value: Any, schema: dict[str, Any], old: Any = None) -> str | None:
    """Evaluates a messageExpression; None when it fails or does not yield a string."""
    try:
        program = _program(expression)
        activation: dict[str, Any] = {"self": to_cel(value, schema)}
        if old is not None:
            activation["oldSelf"] = to_cel(old, schema)
        result = program.evaluate(activation)
    except Exception:  # a broken message falls back to the rule's static message
        return None
    return str(result) if isinstance(result, str) and result.strip() else None
