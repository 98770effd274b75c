"""The object store: the only module that touches SQLite (no HTTP here).

Every object lives in memory (a dict keyed by resource, namespace and name) for fast reads;
SQLite in WAL mode is the durable log. Each mutation gets the next value of one store-wide
resourceVersion and is written together with its change-log row in one transaction, committed
before the caller replies, then published to bounded in-memory watcher queues. A watcher that
falls behind is closed (it re-lists) so writers never wait for readers.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudkit.local.private import private_sqlite

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# (storage key "group/plural", namespace or "", name)
Key = tuple[str, str, str]

CHANGE_LOG_WINDOW = 10_000
WATCHER_QUEUE_LIMIT = 2_000
# Commits between two WAL checkpoints (each commit appends a few pages: the object's row,
# its change row, their index pages); SQLite's own automatic checkpoint would run every
# 1,000 pages inside a commit, that is on the event loop.
CHECKPOINT_EVERY_COMMITS = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    rkey TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (rkey, ns, name));
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY, rkey TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Change:
    """One committed mutation; `prev` is the object before it (None when unknown or new)."""

    rv: int
    rkey: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    prev: Obj | None = None
    # `obj` as the store encoded it for SQLite: watch lines embed it instead of encoding the
    # object again (None for changes made before it was kept).
    body: str | None = None


@dataclass(frozen=True)
class Put:
    """Store `obj` (its metadata.resourceVersion is assigned by the store)."""

    rkey: str
    obj: Obj


@dataclass(frozen=True)
class Remove:
    """Remove `obj`; the DELETED event carries it with a fresh resourceVersion."""

    rkey: str
    obj: Obj


@dataclass(eq=False)
class Subscription:
    """A watcher's bounded queue of changes for one storage key (or every key if None), or,
    once it has a `deliver` callback, a direct hand-off of each change as it is committed."""

    rkey: str | None
    limit: int = WATCHER_QUEUE_LIMIT
    items: collections.deque[Change] = field(default_factory=collections.deque)
    overflowed: bool = False
    closed: bool = False
    # One future per wait and one alarm per wake-up time, not a task and a timer per wait:
    # a write to a resource with 100 watchers wakes 100 of these at once.
    _waiter: asyncio.Future[None] | None = None
    _alarm: asyncio.TimerHandle | None = None
    _alarm_at: float = 0.0
    # Called in the writer's call stack, after the commit: a live watcher writes its event
    # out at once instead of waking a task per watcher per change. Must not block or raise.
    deliver: Callable[[Change], None] | None = None

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        if self.deliver is not None and not self.items:
            try:
                self.deliver(change)
            except Exception:
                # Never the writer's failure: this watcher ends and its client re-watches.
                log.exception("watch delivery failed")
                self.close()
            return
        if len(self.items) >= self.limit:
            # A slow reader is dropped instead of slowing the writer down.
            self.overflowed = True
            self.closed = True
        else:
            self.items.append(change)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ring(self) -> None:
        # asyncio may run a timer up to its clock resolution early: a later wait for the
        # same time must set a new alarm rather than wait for this spent one.
        self._alarm = None
        self._wake()

    async def next_batch(self, until: float) -> list[Change]:
        """Wait until loop time `until` for changes; an empty list means the wait timed out."""
        await self.wait(until)
        return self.take()

    def take(self) -> list[Change]:
        """The queued changes, leaving the queue empty."""
        batch = list(self.items)
        self.items.clear()
        return batch

    async def wait(self, until: float) -> None:
        """Until a change is queued, the subscription closes, or loop time `until`."""
        if not self.items and not self.closed:
            loop = asyncio.get_running_loop()
            if self._alarm is None or self._alarm_at != until:
                if self._alarm is not None:
                    self._alarm.cancel()
                self._alarm = loop.call_at(until, self._ring)
                self._alarm_at = until
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Checkpointer:
    """Copies the WAL back into the database file on a thread of its own.

    Done by SQLite inside a commit, a checkpoint holds the event loop for a stretch of disk
    writes and an fsync (10 to 30 ms on a loaded machine, every ~125 writes): every watch
    event and reply behind it waits that long. A PASSIVE checkpoint on another connection
    never blocks the writer, and the sqlite3 module lets go of the GIL while it runs. It
    changes nothing about durability: a commit is in the WAL before the writer replies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(str(self._path), isolation_level=None)
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # A missed checkpoint only lets the WAL grow until the next one.
                    log.exception("WAL checkpoint failed")
        finally:
            db.close()


@dataclass(frozen=True)
class LoggedChange:
    """A change as the in-memory change log keeps it: texts, not objects. Ten thousand old
    versions as dicts were most of the server's heap, and every full garbage collection
    walked them all on the event loop (50 to 80 ms of CPU a pass at 1,000 instances); a str
    is not tracked by the collector. `prev_body` is the text of the version it replaced."""

    rv: int
    rkey: str
    type: str
    body: str
    prev_body: str | None = None

    def change(self) -> Change:
        prev = None if self.prev_body is None else json.loads(self.prev_body)
        return Change(self.rv, self.rkey, self.type, json.loads(self.body), prev, self.body)


def _key_of(rkey: str, obj: Obj) -> Key:
    meta = obj["metadata"]
    return (rkey, meta.get("namespace") or "", meta["name"])


class Store:
    """Objects in memory, durably logged in SQLite, with a change log and watch fan-out."""

    def __init__(self, path: Path, *, window: int = CHANGE_LOG_WINDOW) -> None:
        self.path = path
        self.window = window
        self.rv = 0
        # Every change with rv > compacted_rv is still in the change log.
        self.compacted_rv = 0
        self._objects: dict[Key, Obj] = {}
        self._by_rkey: dict[str, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._uids: dict[str, Key] = {}
        # Each stored object's JSON text as written to SQLite (compact separators, the order
        # of its keys): replies and lists embed it rather than encoding the object again.
        self._texts: dict[Key, tuple[Obj, str]] = {}
        # owner uid -> keys of objects naming it in ownerReferences (for garbage collection)
        self._owned: dict[str, set[Key]] = collections.defaultdict(set)
        self._log: collections.deque[LoggedChange] = collections.deque()
        self._subs: set[Subscription] = set()
        # Committed writes per storage key: caches derived from a kind's objects (the RBAC
        # policy) compare this to know they are stale, without being told.
        self.writes_by_rkey: collections.Counter[str] = collections.Counter()
        self.lock = asyncio.Lock()
        # 0600 before SQLite opens it: the WAL and shared-memory files copy its mode, and
        # Secret data lives in all three.
        private_sqlite(path)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit is in the WAL file before we reply, so it survives
        # the process being killed (not a power loss, which is fine for a local server).
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run on the Checkpointer's thread, not in a commit on the event loop.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        self._load()
        self._commits_since_checkpoint = 0
        self._checkpointer = Checkpointer(path)

    def _load(self) -> None:
        for rkey, body in self._db.execute("SELECT rkey, body FROM objects"):
            obj = json.loads(body)
            self._index(_key_of(rkey, obj), obj, body)
        meta = dict(self._db.execute("SELECT k, v FROM meta").fetchall())
        self.compacted_rv = int(meta.get("compacted_rv", 0))
        # The newest change row is never compacted away (the window keeps it), so it is the
        # store's RV; a `meta` rv row is only written by older versions of this module.
        (latest,) = self._db.execute("SELECT MAX(rv) FROM changes").fetchone()
        self.rv = max(int(meta.get("rv", 0)), self.compacted_rv, int(latest or 0))
        rows = self._db.execute(
            "SELECT rv, rkey, type, body FROM changes WHERE rv > ? ORDER BY rv",
            (self.compacted_rv,),
        )
        for rv, rkey, typ, body in rows:
            self._log.append(LoggedChange(rv, rkey, typ, body))

    def _index(self, key: Key, obj: Obj | None, text: str | None = None) -> None:
        rkey, ns, name = key
        old = self._objects.get(key)
        if old is not None:
            self._uids.pop(old["metadata"].get("uid", ""), None)
            for ref in old["metadata"].get("ownerReferences") or []:
                self._owned[ref.get("uid", "")].discard(key)
        if obj is None or text is None:
            self._texts.pop(key, None)
        else:
            self._texts[key] = (obj, text)
        if obj is None:
            self._objects.pop(key, None)
            self._by_rkey[rkey].pop((ns, name), None)
        else:
            self._objects[key] = obj
            self._by_rkey[rkey][(ns, name)] = obj
            self._uids[obj["metadata"].get("uid", "")] = key
            for ref in obj["metadata"].get("ownerReferences") or []:
                self._owned[ref.get("uid", "")].add(key)

    def close_watchers(self) -> None:
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()

    def close(self) -> None:
        self.close_watchers()
        self._checkpointer.stop()
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._db.close()

    # -- reads -------------------------------------------------------------------------------

    def get(self, rkey: str, namespace: str, name: str) -> Obj | None:
        """The stored object (shared: callers must copy before changing it)."""
        return self._objects.get((rkey, namespace, name))

    def encoded(self, rkey: str, obj: Obj) -> str | None:
        """The JSON text of `obj` if it is the stored object itself (not a copy or a
        rendering of it), exactly as `json.dumps(obj, separators=(",", ":"))` would give it;
        None otherwise. Stored objects are never changed in place, so the text stays true."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            return None
        entry = self._texts.get((rkey, meta.get("namespace") or "", meta["name"]))
        if entry is None or entry[0] is not obj:
            return None
        return entry[1]

    def list_objects(self, rkey: str, namespace: str | None = None) -> list[Obj]:
        """Objects of one storage key, sorted by namespace then name."""
        bucket = self._by_rkey.get(rkey, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def by_uid(self, uid: str) -> tuple[str, Obj] | None:
        key = self._uids.get(uid)
        if key is None:
            return None
        return key[0], self._objects[key]

    def dependents(self, owner_uid: str) -> list[tuple[str, Obj]]:
        """Objects whose ownerReferences name `owner_uid`."""
        keys = sorted(self._owned.get(owner_uid, ()))
        return [(k[0], self._objects[k]) for k in keys if k in self._objects]

    def all_objects(self) -> Iterable[tuple[str, Obj]]:
        return [(key[0], obj) for key, obj in self._objects.items()]

    def count(self) -> int:
        return len(self._objects)

    # -- writes ------------------------------------------------------------------------------

    def write(self, ops: list[Put | Remove]) -> list[Change]:
        """Apply `ops` in one transaction, each with the next resourceVersion, then publish.

        Synchronous on purpose: with no await between a caller's read and this write, the
        read-modify-write is atomic on the event loop; the commit itself is a WAL append.
        """
        changes: list[Change] = []
        rv = self.rv
        db = self._db
        db.execute("BEGIN")
        try:
            for op in ops:
                rv += 1
                key = _key_of(op.rkey, op.obj)
                prev = self._objects.get(key)
                obj = op.obj
                obj["metadata"]["resourceVersion"] = str(rv)
                body = json.dumps(obj, separators=(",", ":"))
                if isinstance(op, Put):
                    typ = "ADDED" if prev is None else "MODIFIED"
                    db.execute(
                        "INSERT OR REPLACE INTO objects (rkey, ns, name, body) VALUES (?,?,?,?)",
                        (key[0], key[1], key[2], body),
                    )
                else:
                    typ = "DELETED"
                    db.execute(
                        "DELETE FROM objects WHERE rkey=? AND ns=? AND name=?",
                        key,
                    )
                db.execute(
                    "INSERT INTO changes (rv, rkey, ns, name, type, body) VALUES (?,?,?,?,?,?)",
                    (rv, key[0], key[1], key[2], typ, body),
                )
                changes.append(Change(rv, op.rkey, typ, obj, prev, body))
            compact_to = rv - self.window
            # In steps of a hundredth of the window: one DELETE of a tenth of it (1,000 rows
            # of whole objects) held the loop for tens of milliseconds.
            if compact_to > self.compacted_rv + max(1, self.window // 100):
                db.execute("DELETE FROM changes WHERE rv <= ?", (compact_to,))
                db.execute(
                    "INSERT OR REPLACE INTO meta (k, v) VALUES ('compacted_rv', ?)",
                    (compact_to,),
                )
            else:
                compact_to = self.compacted_rv
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS:
            self._commits_since_checkpoint = 0
            self._checkpointer.request()
        self.rv = rv
        self.compacted_rv = compact_to
        for change in changes:
            key = _key_of(change.rkey, change.obj)
            assert change.body is not None
            stored = self._texts.get(key)
            prev_body = stored[1] if stored is not None and stored[0] is change.prev else None
            self._log.append(LoggedChange(change.rv, change.rkey, change.type, change.body,
                                          prev_body))  # fmt: skip
            if change.type == "DELETED":
                self._index(key, None)
            else:
                self._index(key, change.obj, change.body)
            self.writes_by_rkey[change.rkey] += 1
        while self._log and self._log[0].rv <= compact_to:
            self._log.popleft()
        for change in changes:
            for sub in list(self._subs):
                if sub.rkey is None or sub.rkey == change.rkey:
                    sub.offer(change)
                if sub.closed:
                    self._subs.discard(sub)
        return changes

    # -- watch -------------------------------------------------------------------------------

    def subscribe(self, rkey: str | None) -> Subscription:
        sub = Subscription(rkey)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._subs.discard(sub)

    def changes_since(self, rkey: str, rv: int) -> list[Change] | None:
        """Changes of `rkey` after `rv`, or None when the log no longer reaches back that far
        (or `rv` is from the future, e.g. after the state directory was reset)."""
        if rv < self.compacted_rv or rv > self.rv:
            return None
        return [c.change() for c in self._log if c.rv > rv and c.rkey == rkey]
