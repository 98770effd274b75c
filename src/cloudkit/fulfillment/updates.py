"""Updates with a field mask (PATCH), pure: which paths a caller may write, and the merged object.

The mask is upstream's REST form: `update_mask=spec.run_strategy,metadata.labels` (field paths,
comma separated). With a mask, exactly the named fields take the body's values (a named field
missing from the body is cleared). Without one, each writable section present in the body
replaces the stored one whole: `spec` (the whole spec is replaced), `metadata.labels`,
`metadata.annotations`, `metadata.name`, and on the private API `status` and
`metadata.finalizers`. Immutable fields (models.IMMUTABLE_SPEC_FIELDS) that would change are
refused, naming the field, before anything is written.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from cloudkit.fulfillment.models import IMMUTABLE_SPEC_FIELDS, names_field


class UpdateRefused(ValueError):
    """A path the caller may not write, or a change to an immutable field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Writable:
    """The paths one API may write, as prefixes: a path is writable when one of these starts it."""

    roots: tuple[str, ...]
    model: type[BaseModel]

    def check(self, path: str) -> None:
        """UpdateRefused unless `path` names a field of the model under a writable root."""
        if not any(path == root or path.startswith(root + ".") for root in self.roots):
            raise UpdateRefused(path, "not writable through this API")
        if not names_field(self.model, path):
            raise UpdateRefused(path, "no such field")


def parse_mask(text: str | None) -> list[str] | None:
    """`a.b,c` → ["a.b", "c"]; None or blank → None (no mask)."""
    if text is None or not text.strip():
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def implicit_mask(body: dict[str, Any], writable: Writable) -> list[str]:
    """Without a mask: each writable section the body carries, replaced whole."""
    paths = []
    for root in writable.roots:
        section, _, name = root.partition(".")
        if section not in body:
            continue
        if not name or (isinstance(body[section], dict) and name in body[section]):
            paths.append(root)
    return paths


def merge(current: dict[str, Any], body: dict[str, Any], mask: Sequence[str]) -> dict[str, Any]:
    """A copy of `current` where each masked path holds the body's value (or is cleared)."""
    result = copy.deepcopy(current)
    for path in mask:
        *parents, leaf = path.split(".")
        source: Any = body
        target = result
        for name in parents:
            source = source.get(name) if isinstance(source, dict) else None
            child = target.get(name)
            if not isinstance(child, dict):
                child = {}
                target[name] = child
            target = child
        if isinstance(source, dict) and leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
        else:
            target.pop(leaf, None)
    return result


def _normal(value: Any) -> Any:
    # An absent field and its empty default are the same value.
    return None if value in (None, {}, []) else value


def check_immutable(current: dict[str, Any], updated: dict[str, Any]) -> None:
    """UpdateRefused naming the first immutable spec field whose value would change."""
    old, new = current.get("spec") or {}, updated.get("spec") or {}
    for name in IMMUTABLE_SPEC_FIELDS:
        if _normal(old.get(name)) != _normal(new.get(name)):
            raise UpdateRefused(f"spec.{name}", "immutable: set at creation, cannot change")
