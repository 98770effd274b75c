"""CRD `x-kubernetes-validations` rules: transition rules, immutability shortcuts, messages.

The evaluator itself (parsing, cost limit, JSON → CEL conversion) is the product's one CEL,
`cloudkit.cel`; this module adds what only CRD rules need (`self`/`oldSelf`).
"""

from __future__ import annotations

import re
from typing import Any

from celpy import celtypes

from cloudkit.cel import Budget, CelError, compile_program, to_cel

__all__ = ["CelError", "evaluate", "is_transition_rule", "json_equal", "message", "to_cel"]

_OLD_SELF = re.compile(r"\boldSelf\b")

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


def is_transition_rule(rule: str) -> bool:
    """Rules mentioning oldSelf are evaluated only on update, when an old value exists."""
    return bool(_OLD_SELF.search(rule))


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
    program = compile_program(rule)
    activation: dict[str, Any] = {"self": to_cel(value, schema)}
    if old is not None:
        activation["oldSelf"] = to_cel(old, schema)
    result = program.run(activation, Budget())
    if isinstance(result, bool | celtypes.BoolType):
        return bool(result)
    raise CelError(f"rule did not evaluate to a bool: {type(result).__name__}")


def message(expression: str, value: Any, schema: dict[str, Any], old: Any = None) -> str | None:
    """Evaluates a messageExpression; None when it fails or does not yield a string."""
    try:
        program = compile_program(expression)
        activation: dict[str, Any] = {"self": to_cel(value, schema)}
        if old is not None:
            activation["oldSelf"] = to_cel(old, schema)
        result = program.run(activation, Budget())
    except Exception:  # a broken message falls back to the rule's static message
        return None
    return str(result) if isinstance(result, str) and result.strip() else None
