"""The records as the controller last saw them: from the event stream, the lists and the answers
to its own writes, newest version kept, so a reconcile starts without reading the record again.

Only a starting point: every record write is guarded by the version it was decided on, so a
record seen stale costs one Conflict (and a fresh read), never a wrong write. A record the
stream said was deleted (archived) is forgotten; one never seen is read from the API.
"""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]


def _version(record: Object) -> int:
    version = (record.get("metadata") or {}).get("version")
    return version if isinstance(version, int) else -1


class SeenRecords:
    """Records by id, each at the highest `metadata.version` seen."""

    def __init__(self) -> None:
        self._records: dict[str, Object] = {}

    def saw(self, record: Object) -> None:
        record_id = record.get("id")
        if not isinstance(record_id, str):
            return
        known = self._records.get(record_id)
        if known is None or _version(record) >= _version(known):
            self._records[record_id] = record

    def forget(self, record_id: str) -> None:
        self._records.pop(record_id, None)

    def get(self, record_id: str) -> Object | None:
        return self._records.get(record_id)

    def __len__(self) -> int:
        return len(self._records)
