"""The server's calls into the CRD schema engine (`schema.py`), in the server's own Cause type.

No fallback: the engine (and the CEL library under it) is a hard dependency. A server that
cannot import it must not start, because without it every custom resource would be stored
unpruned, undefaulted and unvalidated (fail open).
"""

from __future__ import annotations

from typing import Any

from cloudkit.local.apiserver import schema as engine
from cloudkit.local.apiserver.errors import Cause


def _causes(raw: list[engine.Cause]) -> list[Cause]:
    return [Cause(c.reason, c.message, c.field) for c in raw]


def check_structural(schema: dict[str, Any]) -> list[Cause]:
    return _causes(engine.check_structural(schema))


def prune(
    obj: dict[str, Any], schema: dict[str, Any], *, in_place: bool = False
) -> tuple[dict[str, Any], list[str]]:
    pruned, unknown = engine.prune(obj, schema, in_place=in_place)
    return pruned, list(unknown)


def apply_defaults(
    obj: dict[str, Any], schema: dict[str, Any], *, in_place: bool = False
) -> dict[str, Any]:
    return engine.apply_defaults(obj, schema, in_place=in_place)


def validate(
    obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None
) -> list[Cause]:
    return _causes(engine.validate(obj, schema, old))
