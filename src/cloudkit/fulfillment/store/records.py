"""A record's row form and the store-owned parts of its object: pure functions both databases share.

A row keeps the metadata the database queries on as columns (id, name, creator, tenant, labels,
annotations, version, creation and deletion timestamps, finalizers) and everything else of the
object as one JSON document (`data`: spec, status and any other field the caller sent), as
upstream's tables do. Nothing here does I/O or builds SQL text from a caller's data.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cloudkit.fulfillment.store.base import Conflict, EventType, Kind, Object, OrderKey

# The table of each kind: the only table names SQL ever sees (never a caller's string).
TABLES: dict[str, str] = {"compute_instances": "compute_instances", "hubs": "hubs"}

# Metadata fields kept in columns; the rest of the object goes into `data`.
COLUMN_METADATA = (
    "name",
    "creator",
    "tenant",
    "labels",
    "annotations",
    "version",
    "creation_timestamp",
    "deletion_timestamp",
    "finalizers",
)

# Order paths answered by a column (the value is the column), beside `spec.…` and `status.…`
# paths answered from the JSON document.
ORDER_COLUMNS: dict[str, str] = {
    "id": "id",
    "metadata.name": "name",
    "metadata.creator": "creator",
    "metadata.tenant": "tenant",
    "metadata.version": "version",
    "metadata.creation_timestamp": "creation_timestamp",
    "metadata.deletion_timestamp": "deletion_timestamp",
}
_SEGMENT = re.compile(r"[a-z_][a-z0-9_]*\Z")


def table_of(kind: Kind) -> str:
    """The table of `kind`; ValueError for anything else (it must never reach SQL)."""
    try:
        return TABLES[kind]
    except KeyError:
        raise ValueError(f"kind: unknown kind {kind!r}") from None


def timestamp(now: datetime) -> str:
    """RFC 3339 UTC with fixed-width microseconds, so text order is time order."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Row:
    """One record as the database holds it; JSON-valued fields are Python values here."""

    id: str
    name: str
    creator: str
    tenant: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    version: int
    creation_timestamp: str
    deletion_timestamp: str | None
    finalizers: list[str]
    data: dict[str, Any]

    @property
    def doomed(self) -> bool:
        """Marked for deletion and held by no finalizer: it belongs in the archive."""
        return self.deletion_timestamp is not None and not self.finalizers


def new_row(obj: Object, *, now: datetime) -> Row:
    """The first version of a record from a caller's object; the store-owned fields are set
    here whatever the caller sent (a fresh id, version 1, the creation time, no deletion)."""
    return _row_of(obj, id=str(uuid.uuid4()), version=1, created=timestamp(now), deleted=None)


def changed_row(stored: Row, obj: Object) -> Row:
    """The row `obj` would be stored as in place of `stored`, before its version bump.

    The store-owned fields and the tenant stay as stored: an update cannot move a record into
    another tenant (out of its caller's scope) nor forge its history."""
    row = _row_of(
        obj,
        id=stored.id,
        version=stored.version,
        created=stored.creation_timestamp,
        deleted=stored.deletion_timestamp,
    )
    return replace(row, tenant=stored.tenant)


def bumped(row: Row, **changes: Any) -> Row:
    """`row` with `changes` and the next version."""
    return replace(row, version=row.version + 1, **changes)


def to_object(row: Row) -> Object:
    """The wire form of a row. It shares its values with the row (no copy: a list decodes
    thousands of rows), so the row must not be used afterwards."""
    obj: Object = {"id": row.id}
    data = dict(row.data)
    metadata: dict[str, Any] = dict(data.pop("metadata", None) or {})
    metadata.update(
        name=row.name,
        creator=row.creator,
        tenant=row.tenant,
        labels=row.labels,
        annotations=row.annotations,
        version=row.version,
        creation_timestamp=row.creation_timestamp,
        finalizers=list(row.finalizers),
    )
    if row.deletion_timestamp is not None:
        metadata["deletion_timestamp"] = row.deletion_timestamp
    obj["metadata"] = metadata
    obj.update(data)
    return obj


def check_page(order: Sequence[OrderKey], offset: int, limit: int) -> None:
    """ValueError naming what a list cannot take: a path no record can be sorted by, or a
    negative offset or limit (both stores check the same way before any SQL)."""
    for key in order:
        order_target(key.path)
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit: must not be negative")


def order_target(path: str) -> tuple[str, tuple[str, ...]]:
    """(`column`, ()) for a metadata path, ("data", segments) for a `spec.`/`status.` path.

    The segments are passed to SQL as parameters, never spliced; they are checked anyway so a
    typo is an error, not a silently unsorted list."""
    if path in ORDER_COLUMNS:
        return ORDER_COLUMNS[path], ()
    segments = tuple(path.split("."))
    if (
        len(segments) >= 2
        and segments[0] in ("spec", "status")
        and all(_SEGMENT.match(s) for s in segments)
    ):
        return "data", segments
    raise ValueError(f"order: cannot sort by {path!r}")


def _row_of(obj: Object, *, id: str, version: int, created: str, deleted: str | None) -> Row:
    if not isinstance(obj, Mapping):
        raise ValueError("object: must be a JSON object")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError("metadata: must be a JSON object")
    data = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("id", "metadata")}
    extra = {k: copy.deepcopy(v) for k, v in metadata.items() if k not in COLUMN_METADATA}
    if extra:
        data["metadata"] = extra
    return Row(
        id=id,
        name=_text(metadata, "name"),
        creator=_text(metadata, "creator"),
        tenant=_text(metadata, "tenant"),
        labels=_mapping(metadata, "labels"),
        annotations=_mapping(metadata, "annotations"),
        version=version,
        creation_timestamp=created,
        deletion_timestamp=deleted,
        finalizers=_finalizers(metadata),
        data=data,
    )


def _text(metadata: Mapping[str, Any], field: str) -> str:
    value = metadata.get(field) or ""
    if not isinstance(value, str):
        raise ValueError(f"metadata.{field}: must be a string")
    return value


def _mapping(metadata: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = metadata.get(field) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"metadata.{field}: must be a JSON object")
    return dict(copy.deepcopy(value))


def _finalizers(metadata: Mapping[str, Any]) -> list[str]:
    value = metadata.get("finalizers") or []
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise ValueError("metadata.finalizers: must be a list of strings")
    # Order kept, duplicates dropped: a finalizer is a name in a set that the API shows as a list.
    return list(dict.fromkeys(value))


@dataclass(frozen=True)
class Write:
    """What a change does to the database: store `row` (or move it to the archive when the
    event is DELETED) and publish `event` with its object."""

    row: Row
    event: EventType

    @property
    def archives(self) -> bool:
        return self.event == "DELETED"


def creation(obj: Object, *, now: datetime) -> Write:
    return Write(new_row(obj, now=now), "CREATED")


def update_of(
    stored: Row, change: Callable[[Object], Object], *, expected_version: int | None
) -> Write | None:
    """The write `change` asks for, None when it changes nothing. Raises Conflict, or what
    `change` raises, before anything is written."""
    if expected_version is not None and stored.version != expected_version:
        raise Conflict(
            f"metadata.version: expected {expected_version}, the record is at {stored.version}"
        )
    # A copy: `change` may edit its argument in place, and `stored` is compared below.
    candidate = changed_row(stored, change(to_object(copy.deepcopy(stored))))
    if candidate == stored:
        return None
    return _settled(bumped(candidate))


def deletion_of(stored: Row, *, now: datetime) -> Write | None:
    """The write that marks `stored` for deletion; None when it already is (idempotent)."""
    if stored.deletion_timestamp is not None:
        return None
    return _settled(bumped(stored, deletion_timestamp=timestamp(now)))


def _settled(row: Row) -> Write:
    # The last finalizer gone from a record marked for deletion: it leaves for the archive.
    return Write(row, "DELETED" if row.doomed else "UPDATED")
