"""Table output (meta.k8s.io/v1 Table): columns, rows and a tiny JSONPath for printer columns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from cloudkit.local.apiserver.resources import ResourceInfo

Obj = dict[str, Any]

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Columns of the built-ins beyond Name (jsonPath evaluated like printer columns).
_BUILTIN_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "/namespaces": [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}, _AGE],
    "/secrets": [{"name": "Type", "type": "string", "jsonPath": ".type"}, _AGE],
    "apiextensions.k8s.io/customresourcedefinitions": [
        {"name": "Created At", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ],
    "/events": [
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason"},
        {"name": "Message", "type": "string", "jsonPath": ".message"},
        _AGE,
    ],
}

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]"
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate `.a.b[0][*][?(@.k=="v")]` (braces optional); unknown syntax gives no values."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    nodes = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        for node in nodes:
            if m.group(1) is not None:
                if isinstance(node, dict) and m.group(1) in node:
                    nxt.append(node[m.group(1)])
            elif m.group(2) is not None:
                if isinstance(node, list):
                    if m.group(2) == "*":
                        nxt.extend(node)
                    elif int(m.group(2)) < len(node):
                        nxt.append(node[int(m.group(2))])
            elif isinstance(node, list):
                key, want = m.group(3), m.group(4)
                for item in node:
                    values = jsonpath(item, "." + key)
                    if values and str(values[0]) == want:
                        nxt.append(item)
        nodes = nxt
    return nodes


def human_duration(seconds: float) -> str:
    """kubectl's short age format (5s, 3m20s, 4h, 2d3h ...)."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _age(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return human_duration((datetime.now(UTC) - when).total_seconds())


def columns_for(info: ResourceInfo) -> list[dict[str, Any]]:
    if info.custom:
        return list(info.printer_columns) or [_AGE]
    return _BUILTIN_COLUMNS.get(info.rkey, [_AGE])


def _cell(column: dict[str, Any], obj: Obj) -> Any:
    values = jsonpath(obj, column.get("jsonPath", ""))
    if not values:
        return None
    kind = column.get("type", "string")
    value = values[0]
    if kind == "date":
        return _age(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if len(values) > 1:
        return ",".join(_text(v) for v in values)
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _row_object(obj: Obj, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def to_table(info: ResourceInfo, objs: list[Obj], include: str, list_meta: Obj) -> Obj:
    columns = columns_for(info)
    definitions = [_NAME] + [
        {
            "name": c.get("name", ""),
            "type": "string" if c.get("type") == "date" else c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": int(c.get("priority", 0)),
        }
        for c in columns
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"]] + [_cell(c, obj) for c in columns],
            "object": _row_object(obj, include),
        }
        for obj in objs
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
