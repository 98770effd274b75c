"""The SQLite store on its own: durability across reopen, change-log window, slow watchers."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudkit.local.apiserver.store import Put, Remove, Store

pytestmark = pytest.mark.stack


def _cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "d"}}


def test_reopen_keeps_objects_rv_and_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", window=20)
    for i in range(50):
        store.write([Put("/configmaps", _cm(f"c{i}"))])
    store.write([Remove("/configmaps", dict(store.get("/configmaps", "d", "c0") or {}))])
    assert store.rv == 51
    assert store.changes_since("/configmaps", 1) is None  # compacted away: 410 for watchers
    recent = store.changes_since("/configmaps", 49)
    assert recent is not None and [c.type for c in recent] == ["ADDED", "DELETED"]
    store.close()

    reopened = Store(tmp_path / "db", window=20)
    assert reopened.rv == 51 and reopened.count() == 49
    assert reopened.get("/configmaps", "d", "c0") is None
    replay = reopened.changes_since("/configmaps", 49)
    assert replay is not None and [c.rv for c in replay] == [50, 51]
    assert reopened.changes_since("/configmaps", 60) is None  # from the future
    reopened.close()


def test_slow_watcher_is_closed_not_waited_for(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    sub = store.subscribe("/configmaps")
    sub.limit = 5
    for i in range(10):
        store.write([Put("/configmaps", _cm(f"c{i}"))])
    assert sub.closed and sub.overflowed and len(sub.items) == 5
    store.close()
