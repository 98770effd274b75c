"""The SQLite store on its own: durability across reopen, change-log window, slow watchers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import start_apiserver
from cloudkit.local.apiserver.store import CHECKPOINT_EVERY_COMMITS, Put, Remove, Store
from tests.waiting import until_sync

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


def test_the_wal_is_checkpointed_off_the_writers_thread(tmp_path: Path) -> None:
    """The writer's connection never checkpoints (that would hold the event loop inside a
    commit); the checkpointer's thread copies the WAL into the database file instead."""
    store = Store(tmp_path / "db")
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    db_file = tmp_path / "db"
    before = db_file.stat().st_size
    big = "x" * 3000
    for i in range(3 * CHECKPOINT_EVERY_COMMITS):
        store.write([Put("/configmaps", {**_cm(f"c{i}"), "data": {"k": big}})])
    # 300 objects of 3 kB: ~1 MB that only a checkpoint moves from the WAL into the file.
    until_sync(lambda: db_file.stat().st_size, lambda size: size > before + 500_000,
               within=30, what="the database file's size after checkpoints")  # fmt: skip
    store.close()
    reopened = Store(tmp_path / "db")
    assert reopened.count() == 3 * CHECKPOINT_EVERY_COMMITS
    reopened.close()


def test_the_change_log_is_compacted_in_small_steps(tmp_path: Path) -> None:
    """Compaction deletes a hundredth of the window at a time (one DELETE of a tenth of it
    held the loop for tens of milliseconds), and never lets the log outgrow the window by
    more than that."""
    store = Store(tmp_path / "db", window=1000)
    sizes = []
    for i in range(1500):
        store.write([Put("/configmaps", _cm(f"c{i % 50}"))])
        sizes.append(store.rv - store.compacted_rv)
    assert max(sizes) <= 1000 + 1000 // 100 + 1
    assert min(sizes[1100:]) >= 1000
    (rows,) = store._db.execute("SELECT COUNT(*) FROM changes").fetchone()
    assert rows == store.rv - store.compacted_rv
    store.close()


def test_the_change_log_holds_texts_not_objects(tmp_path: Path) -> None:
    """Old versions in the change log are texts, which the garbage collector does not track:
    as dicts, 10,000 of them were most of the heap every full collection walked."""
    store = Store(tmp_path / "db")
    body = {"k": [{"n": i, "v": "x"} for i in range(20)]}
    for i in range(10):
        store.write([Put("/configmaps", {**_cm(f"c{i}"), "data": body})])
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        store.write([Put("/configmaps", {**_cm(f"c{i % 10}"), "data": {**body, "i": str(i)}})])
    gc.collect()
    # 2,000 versions of 20+ containers each: as objects, 40,000 more tracked.
    assert len(gc.get_objects()) - before < 2000
    replay = store.changes_since("/configmaps", store.rv - 10)
    assert replay is not None and len(replay) == 10
    assert all(c.prev is not None and c.prev["data"]["i"] != c.obj["data"]["i"] for c in replay)
    store.close()


def test_slow_watcher_is_closed_not_waited_for(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    sub = store.subscribe("/configmaps")
    sub.limit = 5
    for i in range(10):
        store.write([Put("/configmaps", _cm(f"c{i}"))])
    assert sub.closed and sub.overflowed and len(sub.items) == 5
    store.close()


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _exposed(directory: Path) -> list[str]:
    paths = [directory, *directory.rglob("*")]
    return [
        f"{stat.S_IMODE(p.stat().st_mode):04o} {p.name}" for p in paths if p.stat().st_mode & 0o077
    ]


def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Secret data lives in the database and its WAL: 0600 even under umask 0, as are the
    token, kubeconfig and TLS files beside it (and a wider file left from before narrows)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    (state / "apiserver.db-wal").write_text("")
    with _umask(0):
        state.chmod(0o777)
        (state / "apiserver.db-wal").chmod(0o666)

        async def look_while_serving() -> tuple[set[str], list[str]]:
            handle = await start_apiserver(state)  # writes the initial namespaces
            try:
                return {p.name for p in state.iterdir()}, _exposed(state)
            finally:
                await handle.stop()

        names, exposed = asyncio.run(look_while_serving())
    assert {"apiserver.db", "apiserver.db-wal", "apiserver.db-shm", "token"} <= names
    assert {"kubeconfig", "tls.crt", "tls.key"} <= names
    assert exposed == []
