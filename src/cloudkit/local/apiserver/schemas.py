"""Adapter to the CRD schema engine (`schema.py`, owned by another module author).

The server calls only these four functions, so it keeps working (without pruning, defaulting
or validation) while `schema.py` is absent, and picks it up as soon as it exists.
"""

from __future__ import annotations

import importlib
from typing import Any

from cloudkit.local.apiserver.errors import Cause

try:
    _engine: Any = importlib.import_module("cloudkit.local.apiserver.schema")
except ImportError:  # pragma: no cover - only while schema.py is not written yet
    _engine = None

AVAILABLE = _engine is not None


def _causes(raw: list[Any]) -> list[Cause]:
    return [Cause(c.reason, c.message, c.field) for c in raw]


def check_structural(schema: dict[str, Any]) -> list[Cause]:
    if _engine is None:
        return []
    return _causes(_engine.check_structural(schema))


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    if _engine is None:
        return obj, []
    pruned, unknown = _engine.prune(obj, schema)
    return pruned, list(unknown)


def apply_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if _engine is None:
        return obj
    result: dict[str, Any] = _engine.apply_defaults(obj, schema)
    return result


def validate(
    obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None
) -> list[Cause]:
    if _engine is None:
        return []
    return _causes(_engine.validate(obj, schema, old))
