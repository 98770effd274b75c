"""Field ownership for server-side apply: `metadata.managedFields` as kube-apiserver keeps it
(structured-merge-diff's Updater), on plain dicts. Pure: the clock is passed in.

Each entry names a manager, its operation (`Apply` or `Update`), the API version, the
subresource, and the fields it owns as a FieldsV1 tree (`{"f:spec": {"f:size": {}}}`).
- An `Update` (create, update, any non-apply patch) gives its manager the fields it added or
  changed and takes them from everyone else; removed fields leave every owner. It never
  conflicts.
- An `Apply` makes its manager own exactly the fields of its configuration, removes from the
  object the fields it applied before, no longer applies and nobody else owns, and conflicts
  (409) when it would change a field another manager owns, unless forced, which takes them.

Lists are atomic (one field: no schema tells us which lists are keyed), as are scalars.
System metadata (name, namespace, uid, resourceVersion, generation, timestamps) is owned by
nobody; with a status subresource, the main resource's managers never own `status` and the
status subresource's own nothing but `status`, as upstream's reset fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Path = tuple[str, ...]  # ("f:spec", "f:size")
APPLY, UPDATE = "Apply", "Update"
_UNOWNED_META = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
})  # fmt: skip
_STATUS = "f:status"
_META = "f:metadata"


@dataclass(frozen=True)
class Conflict:
    """A field the applier would change while another manager owns it."""

    manager: str  # upstream's printManager rendering
    path: Path


class ApplyConflicts(Exception):
    """Raised by `apply` (unforced) with every conflict found."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__(message(conflicts))
        self.conflicts = conflicts


def _leaves(value: Any, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _leaves(child, (*prefix, f"f:{key}"), out)
    else:
        out.add(prefix)


def _owned_scope(obj: Obj, subresource: str | None, status_split: bool) -> Iterator[Path]:
    """The leaf paths of `obj` a manager of this (sub)resource can own."""
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if status_split and (key == "status") != (subresource == "status"):
            continue
        out: set[Path] = set()
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _UNOWNED_META:
                    _leaves(meta_value, (_META, f"f:{meta_key}"), out)
        else:
            _leaves(value, (f"f:{key}",), out)
        yield from out


def field_set(obj: Obj, subresource: str | None = None, status_split: bool = False) -> set[Path]:
    """Every field `obj` sets that a manager may own."""
    return set(_owned_scope(obj, subresource, status_split))


def _changed(old: Any, new: Any, prefix: Path, added: set[Path], removed: set[Path]) -> None:
    """Leaf paths added or modified (into `added`) and removed, descending only where the two
    differ (a subtree equal on both sides costs one C-level comparison)."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and old and new:
        for key in old.keys() | new.keys():
            path = (*prefix, f"f:{key}")
            if key not in new:
                _leaves(old[key], path, removed)
            elif key not in old:
                _leaves(new[key], path, added)
            else:
                _changed(old[key], new[key], path, added, removed)
        return
    if isinstance(old, dict) and old:
        _leaves(old, prefix, removed)
    _leaves(new, prefix, added)


def _in_scope(path: Path, subresource: str | None, status_split: bool) -> bool:
    if path[0] == _META:
        return len(path) > 1 and path[1][2:] not in _UNOWNED_META
    if path[0] in ("f:apiVersion", "f:kind"):
        return False
    return not status_split or (path[0] == _STATUS) == (subresource == "status")


def changes(
    old: Obj, new: Obj, subresource: str | None, status_split: bool
) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) ownable leaf paths from `old` to `new`."""
    added: set[Path] = set()
    removed: set[Path] = set()
    _changed(old, new, (), added, removed)
    keep = [p for p in added if p and _in_scope(p, subresource, status_split)]
    gone = [p for p in removed if p and _in_scope(p, subresource, status_split)]
    return set(keep), set(gone)


# -- FieldsV1 trees -------------------------------------------------------------------------


def to_fields_v1(paths: Iterable[Path]) -> Obj:
    """Paths as a FieldsV1 tree; a path that is also a prefix of another is marked `.`."""
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    for path in paths:
        node = tree
        for part in path:
            node = node[part]
        if node:
            node["."] = {}
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    """The leaf paths of a FieldsV1 tree (a malformed tree owns nothing)."""
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for key, child in tree.items():
        if key == ".":
            out.add(prefix)
        elif isinstance(child, dict) and child:
            out |= from_fields_v1(child, (*prefix, key))
        else:
            out.add((*prefix, key))
    return out


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str
    fields: set[Path]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource

    def rendered(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation,
                    "apiVersion": self.api_version, "time": self.time,
                    "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}  # fmt: skip
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def shown(self) -> str:
        """upstream's printManager: how a conflict names this manager."""
        name = json.dumps(self.manager)
        if self.subresource:
            name += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            return f"{name} using {self.api_version} at {self.time}"
        return name


def entries(obj: Obj) -> list[Entry]:
    """The stored object's managedFields, read leniently (unknown shapes are dropped)."""
    raw = obj.get("metadata", {}).get("managedFields")
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str):
            continue
        fields = from_fields_v1(item.get("fieldsV1"))
        out.append(Entry(item["manager"], str(item.get("operation", UPDATE)),
                         str(item.get("apiVersion", "")), str(item.get("subresource", "")),
                         str(item.get("time", "")), fields))  # fmt: skip
    return out


def render(managed: list[Entry]) -> list[Obj]:
    return [e.rendered() for e in managed if e.fields]


def _own(
    managed: list[Entry], manager: str, operation: str, api_version: str, subresource: str,
    now: str,
) -> Entry:  # fmt: skip
    for entry in managed:
        if entry.key == (manager, operation, subresource):
            entry.api_version, entry.time = api_version, now
            return entry
    entry = Entry(manager, operation, api_version, subresource, now, set())
    managed.append(entry)
    return entry


def update(
    managed: list[Entry], added: set[Path], removed: set[Path], manager: str,
    api_version: str, subresource: str | None, now: str,
) -> list[Entry]:  # fmt: skip
    """Ownership after a create/update/patch by `manager` that added or changed `added` and
    removed `removed` (see `changes`)."""
    for entry in managed:
        entry.fields -= added
        entry.fields -= removed
    mine = _own(managed, manager, UPDATE, api_version, subresource or "", now)
    mine.fields |= added
    return [e for e in managed if e.fields]


def _conflicts(
    managed: list[Entry], applier: tuple[str, str, str], touched: set[Path]
) -> list[Conflict]:
    found = []
    for entry in managed:
        if entry.key == applier:
            continue
        for path in sorted(entry.fields & touched):
            found.append(Conflict(entry.shown(), path))
    return found


def _remove_path(obj: Obj, path: Path) -> None:
    node: Any = obj
    for part in path[:-1]:
        node = node.get(part[2:]) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1][2:], None)


def apply(
    managed: list[Entry], old: Obj, merged: Obj, config: Obj, manager: str, api_version: str,
    subresource: str | None, status_split: bool, force: bool, now: str,
) -> list[Entry]:  # fmt: skip
    """Ownership after `manager` applied `config` (merged into `old` as `merged`, which loses
    the fields the manager stopped applying). Raises ApplyConflicts unless `force`."""
    key = (manager, APPLY, subresource or "")
    applied = field_set(config, subresource, status_split)
    previous = next((e.fields for e in managed if e.key == key), set())
    kept = applied.union(*(e.fields for e in managed if e.key != key))
    # A path still applied or owned through a parent or a child (`data: {}` applied before,
    # `data: {a: b}` now) is not dropped.
    related = {p[:i] for p in kept for i in range(1, len(p) + 1)}
    for path in sorted(previous - kept, key=len, reverse=True):
        if path not in related and not any(path[:i] in kept for i in range(1, len(path))):
            _remove_path(merged, path)
    added, removed = changes(old, merged, subresource, status_split)
    touched = added | removed
    conflicts = _conflicts(managed, key, added)
    if conflicts and not force:
        raise ApplyConflicts(conflicts)
    for entry in managed:
        if entry.key != key:
            entry.fields -= touched
    mine = _own(managed, manager, APPLY, api_version, subresource or "", now)
    mine.fields = applied
    return [e for e in managed if e.fields]


def path_text(path: Path) -> str:
    """upstream's fieldpath rendering: `.spec.size`."""
    return "".join(f".{part[2:]}" for part in path)


def message(conflicts: list[Conflict]) -> str:
    """upstream's getConflictMessage."""
    if len(conflicts) == 1:
        c = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {c.manager}: {path_text(c.path)}"
    by_manager: dict[str, list[Path]] = {}
    for c in conflicts:
        by_manager.setdefault(c.manager, []).append(c.path)
    lines = []
    for manager in sorted(by_manager):
        lines.append(f"conflicts with {manager}:")
        lines += [f"- {path_text(p)}" for p in by_manager[manager]]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def same_ownership(before: list[Entry], after: list[Entry]) -> bool:
    """Whether two ownership states differ in anything but times (a no-op write keeps the
    stored managedFields, as upstream ignores timestamp-only changes)."""

    def shape(managed: list[Entry]) -> list[tuple[Any, ...]]:
        return [(e.key, e.api_version, frozenset(e.fields)) for e in managed if e.fields]

    return shape(before) == shape(after)
