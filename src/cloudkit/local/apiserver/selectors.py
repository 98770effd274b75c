"""Label and field selectors: parsing (400 on bad syntax) and matching on plain dicts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cloudkit.local.apiserver.errors import ApiError

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_OP_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|!=|=|>|<)\s*([^\s!=<>(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _label_requirement(text: str) -> Matcher:
    if m := _SET_RE.match(text):
        key, op, raw = m.group(1), m.group(2), m.group(3)
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _OP_RE.match(text):
        key, op, value = m.group(1), m.group(2), m.group(3)
        if op in ("=", "=="):
            return lambda labels: labels.get(key) == value
        if op == "!=":
            return lambda labels: labels.get(key) != value
        try:
            bound = int(value)
        except ValueError:
            raise ApiError(400, f"unable to parse requirement: invalid integer {value!r}") from None
        if op == ">":
            return lambda labels: (
                _int_or_none(labels.get(key)) is not None
                and (_int_or_none(labels.get(key)) or 0) > bound
            )
        return lambda labels: (
            _int_or_none(labels.get(key)) is not None
            and (_int_or_none(labels.get(key)) or 0) < bound
        )
    if m := _EXISTS_RE.match(text):
        negate, key = m.group(1) == "!", m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise ApiError(400, f"unable to parse requirement: {text.strip()!r}")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_label_selector(text: str | None) -> Matcher | None:
    """A matcher over a whole object, or None for an empty selector."""
    if not text or not text.strip():
        return None
    reqs = [_label_requirement(r) for r in _split_requirements(text)]

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def field_value(obj: dict[str, Any], path: str) -> str | None:
    """The string form of a dotted field, as field selectors compare it."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return ""
    if isinstance(node, dict | list):
        return None
    return str(node)


def parse_field_selector(text: str | None, supported: Callable[[str], bool]) -> Matcher | None:
    """A matcher for `field=value` / `field!=value` terms; unsupported fields give 400."""
    if not text or not text.strip():
        return None
    terms: list[tuple[str, bool, str]] = []
    for raw in text.split(","):
        if not raw.strip():
            continue
        m = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", raw)
        if not m:
            raise ApiError(400, f"invalid field selector: {raw!r}")
        path, op, value = m.group(1), m.group(2), m.group(3)
        if not supported(path):
            raise ApiError(400, f'field label not supported: "{path}"')
        terms.append((path, op != "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        for path, equal, value in terms:
            actual = field_value(obj, path)
            if path == "metadata.namespace" and actual is None:
                actual = ""
            if (actual == value) != equal:
                return False
        return True

    return match


def name_from_field_selector(text: str | None) -> str | None:
    """`metadata.name=x` alone selects one object (used to narrow single-object watches)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*metadata\.name\s*==?\s*([^,\s]+)\s*", text)
    return m.group(1) if m else None
