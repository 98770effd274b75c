"""The SQLite store: the embedded default, one file, nothing else to run.

One writer path: every change is queued to a single writer thread that owns the only writing
connection; the changes queued while it commits are applied together in the next transaction
(group commit: one fsync for many changes), then their events are published, in commit order,
to the in-process feed. Reads use their own connection in their own thread (WAL lets them run
beside a write). Durability: WAL with `synchronous=FULL`, so a commit is fsynced before its
caller hears of it: an acknowledged write survives kill -9 and a power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cloudkit.fulfillment.store.base import (
    Event,
    EventType,
    Kind,
    NotFound,
    Object,
    OrderKey,
    Page,
    Scope,
    StoreError,
    Unavailable,
)
from cloudkit.fulfillment.store.feed import Feed, Subscription
from cloudkit.fulfillment.store.migrations import migrate_sqlite
from cloudkit.fulfillment.store.records import (
    Row,
    Write,
    check_page,
    creation,
    deletion_of,
    order_target,
    table_of,
    timestamp,
    to_object,
    update_of,
    utc_now,
)

T = TypeVar("T")
# At most this many changes share one transaction (bounds a batch's latency and memory).
BATCH_LIMIT = 500
_COLUMNS = (
    "id, name, creator, tenant, labels, annotations, version, "
    "creation_timestamp, deletion_timestamp, finalizers, data"
)
# What reads select: the four JSON columns joined into one JSON array in SQL, so a row costs one
# `json.loads` instead of four (decoding is most of a list's time). Plain concatenation is
# enough: every one of them was written by `json.dumps`, so each is a complete JSON value.
_READ_COLUMNS = (
    "id, name, creator, tenant, version, creation_timestamp, deletion_timestamp, "
    "'[' || labels || ',' || annotations || ',' || finalizers || ',' || data || ']'"
)


@dataclass
class _Change:
    """A queued change: `apply` runs in the writer thread inside the batch's transaction and
    returns the caller's result and the events to publish once the transaction commits."""

    apply: Callable[[sqlite3.Connection], tuple[Any, list[tuple[EventType, Kind, Object]]]]
    done: asyncio.Future[Any]
    outcome: tuple[Any, list[tuple[EventType, Kind, Object]]] | None = None
    error: BaseException | None = None
    # The sequence number of the change's first event, known once it committed.
    first_seq: int = 0


# Named at module level: inside the store, `list` is its method.
_Changes = list[_Change]


class SqliteStore:
    """The Store protocol over one SQLite file."""

    def __init__(self, path: Path, *, now: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self._now = now
        self._feed = Feed()
        self._queue: _Changes = []
        self._queued = asyncio.Event()
        self._closing = False
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._writer_db = _connect(path)
        self._reader_db = _connect(path)
        self._reader_db.execute("PRAGMA query_only=ON")
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, *, now: Callable[[], datetime] = utc_now) -> SqliteStore:
        """Open (creating it private to its owner when missing) and migrate to the latest schema."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 before SQLite opens it: the WAL and shared-memory files copy its mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        store = cls(path, now=now)
        try:
            await store._in_writer(lambda: migrate_sqlite(store._writer_db))
        except BaseException:
            await store.close()
            raise
        store._writer = asyncio.create_task(store._write_batches(), name="store-writer")
        return store

    # --- reads -------------------------------------------------------------------------------

    async def get(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        table = table_of(kind)
        row = await self._in_reader(lambda: _fetch(self._reader_db, table, id, scope))
        if row is None:
            raise NotFound(f"{kind}: no record {id!r}")
        return to_object(row)

    async def list(
        self,
        kind: Kind,
        *,
        scope: Scope,
        offset: int = 0,
        limit: int = 100,
        order: Sequence[OrderKey] = (),
        match: Callable[[Object], bool] | None = None,
    ) -> Page:
        table = table_of(kind)
        check_page(order, offset, limit)
        return await self._in_reader(
            lambda: _list(self._reader_db, table, scope, offset, limit, order, match)
        )

    def events(self) -> Subscription:
        return self._feed.subscribe()

    # --- changes -----------------------------------------------------------------------------

    async def create(self, kind: Kind, obj: Object) -> Object:
        table = table_of(kind)

        def apply(db: sqlite3.Connection) -> tuple[Any, list[tuple[EventType, Kind, Object]]]:
            write = creation(obj, now=self._now())
            _insert(db, table, write.row)
            created = to_object(write.row)
            return created, [("CREATED", kind, created)]

        result: Object = await self._change(apply)
        return result

    async def update(
        self,
        kind: Kind,
        id: str,
        change: Callable[[Object], Object],
        *,
        scope: Scope,
        expected_version: int | None = None,
    ) -> Object:
        table = table_of(kind)

        def apply(db: sqlite3.Connection) -> tuple[Any, list[tuple[EventType, Kind, Object]]]:
            stored = _fetch_or_fail(db, kind, table, id, scope)
            write = update_of(stored, change, expected_version=expected_version)
            return _store(db, kind, table, stored, write, now=self._now())

        result: Object = await self._change(apply)
        return result

    async def delete(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        table = table_of(kind)

        def apply(db: sqlite3.Connection) -> tuple[Any, list[tuple[EventType, Kind, Object]]]:
            stored = _fetch_or_fail(db, kind, table, id, scope)
            now = self._now()
            return _store(db, kind, table, stored, deletion_of(stored, now=now), now=now)

        result: Object = await self._change(apply)
        return result

    async def signal(self, kind: Kind, id: str, *, scope: Scope) -> None:
        table = table_of(kind)

        # Through the writer like a change, so SIGNALED takes its place in commit order.
        def apply(db: sqlite3.Connection) -> tuple[Any, list[tuple[EventType, Kind, Object]]]:
            stored = _fetch_or_fail(db, kind, table, id, scope)
            return None, [("SIGNALED", kind, to_object(stored))]

        await self._change(apply)

    async def close(self) -> None:
        self._closing = True
        self._queued.set()
        if self._writer is not None:
            await self._writer
        self._feed.close()
        # The connections are closed in their own threads, after whatever each still runs.
        with contextlib.suppress(RuntimeError):
            await self._in_writer(self._writer_db.close)
            await self._in_reader(self._reader_db.close)
        self._writer_thread.shutdown(wait=True)
        self._reader_thread.shutdown(wait=True)

    # --- the writer --------------------------------------------------------------------------

    async def _change(self, apply: Any) -> Any:
        if self._closing:
            raise Unavailable("the store is closed")
        change = _Change(apply, asyncio.get_running_loop().create_future())
        self._queue.append(change)
        self._queued.set()
        return await change.done

    async def _write_batches(self) -> None:
        while True:
            await self._queued.wait()
            if not self._queue:
                self._queued.clear()
                if self._closing:
                    return
                continue
            batch = self._queue[:BATCH_LIMIT]
            del self._queue[:BATCH_LIMIT]
            try:
                await self._in_writer(functools.partial(self._commit, batch))
            except sqlite3.Error as error:
                for change in batch:
                    change.outcome, change.error = None, Unavailable(f"database: {error}")
            self._finish(batch)

    def _commit(self, batch: _Changes) -> None:
        """Apply a batch in one transaction; when the database itself fails a change, roll
        back and apply each change alone so only that one fails."""
        try:
            self._apply(batch)
        except sqlite3.Error:
            for change in batch:
                change.outcome, change.error = None, None
                try:
                    self._apply([change])
                except sqlite3.Error as error:
                    change.outcome, change.error = None, Unavailable(f"database: {error}")

    def _apply(self, changes: _Changes) -> None:
        db = self._writer_db
        db.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                try:
                    change.outcome = change.apply(db)
                except sqlite3.Error:
                    raise
                except Exception as error:
                    # Raised before the change wrote anything (see records.update_of).
                    change.error = error
            events = sum(len(c.outcome[1]) for c in changes if c.outcome is not None)
            (last,) = db.execute("SELECT last FROM event_sequence").fetchone()
            if events:
                db.execute("UPDATE event_sequence SET last = ?", (last + events,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        seq = last + 1
        for change in changes:
            if change.outcome is not None:
                change.first_seq = seq
                seq += len(change.outcome[1])

    def _finish(self, batch: _Changes) -> None:
        # After the commit: events first (in commit order), then the callers hear back.
        for change in batch:
            if change.outcome is None:
                continue
            for offset, (type_, kind, obj) in enumerate(change.outcome[1]):
                event = Event(seq=change.first_seq + offset, type=type_, kind=kind, object=obj)
                self._feed.publish(event)
        for change in batch:
            if change.done.done():
                continue
            if change.error is not None:
                change.done.set_exception(change.error)
            else:
                assert change.outcome is not None
                change.done.set_result(change.outcome[0])

    async def _in_writer(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, work)

    async def _in_reader(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_thread, work)
        except sqlite3.Error as error:
            raise Unavailable(f"database: {error}") from error


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit (NORMAL would survive kill -9 but not a power
    # loss); group commit pays that fsync once per batch, not once per change.
    db.execute("PRAGMA synchronous=FULL")
    return db


def _scope_clause(scope: Scope) -> tuple[str, list[Any]]:
    if scope.tenants is None:
        return "1 = 1", []
    if not scope.tenants:
        return "0 = 1", []
    tenants = sorted(scope.tenants)
    # One placeholder per tenant: the values travel as parameters.
    return f"tenant IN ({', '.join('?' * len(tenants))})", list(tenants)


def _row(values: Sequence[Any]) -> Row:
    """A row selected with _READ_COLUMNS."""
    labels, annotations, finalizers, data = json.loads(values[7])
    return Row(
        id=values[0],
        name=values[1],
        creator=values[2],
        tenant=values[3],
        labels=labels,
        annotations=annotations,
        version=values[4],
        creation_timestamp=values[5],
        deletion_timestamp=values[6],
        finalizers=finalizers,
        data=data,
    )


def _fetch(db: sqlite3.Connection, table: str, id: str, scope: Scope) -> Row | None:
    where, params = _scope_clause(scope)
    found = db.execute(
        f"SELECT {_READ_COLUMNS} FROM {table} WHERE id = ? AND {where}", [id, *params]
    ).fetchone()
    return None if found is None else _row(found)


def _fetch_or_fail(db: sqlite3.Connection, kind: Kind, table: str, id: str, scope: Scope) -> Row:
    row = _fetch(db, table, id, scope)
    if row is None:
        raise NotFound(f"{kind}: no record {id!r}")
    return row


def _order_clause(order: Sequence[OrderKey]) -> tuple[str, list[Any]]:
    terms: list[str] = []
    params: list[Any] = []
    for key in order:
        column, segments = order_target(key.path)
        direction = "DESC" if key.descending else "ASC"
        if segments:
            terms.append(f"json_extract(data, ?) {direction}")
            params.append("$." + ".".join(segments))
        else:
            terms.append(f"{column} {direction}")
    # Creation order, then the id, settles every tie: pages never overlap or skip.
    terms += ["creation_timestamp ASC", "id ASC"]
    return ", ".join(terms), params


def _list(
    db: sqlite3.Connection,
    table: str,
    scope: Scope,
    offset: int,
    limit: int,
    order: Sequence[OrderKey],
    match: Callable[[Object], bool] | None,
) -> Page:
    where, params = _scope_clause(scope)
    order_by, order_params = _order_clause(order)
    select = f"SELECT {_READ_COLUMNS} FROM {table} WHERE {where} ORDER BY {order_by}"
    # One read transaction: the count and the page come from the same snapshot.
    db.execute("BEGIN")
    try:
        if match is None:
            (total,) = db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()
            rows = db.execute(
                f"{select} LIMIT ? OFFSET ?", [*params, *order_params, limit, offset]
            ).fetchall()
            return Page(items=[to_object(_row(r)) for r in rows], total=total)
        matching = [
            obj
            for obj in (to_object(_row(r)) for r in db.execute(select, [*params, *order_params]))
            if match(obj)
        ]
        return Page(items=matching[offset : offset + limit], total=len(matching))
    finally:
        db.execute("COMMIT")


def _values(row: Row) -> tuple[Any, ...]:
    return (
        row.id,
        row.name,
        row.creator,
        row.tenant,
        json.dumps(row.labels),
        json.dumps(row.annotations),
        row.version,
        row.creation_timestamp,
        row.deletion_timestamp,
        json.dumps(row.finalizers),
        json.dumps(row.data),
    )


def _insert(db: sqlite3.Connection, table: str, row: Row) -> None:
    values = _values(row)  # may raise (a value JSON cannot hold) before anything is written
    db.execute(f"INSERT INTO {table} ({_COLUMNS}) VALUES ({', '.join('?' * 11)})", values)


def _store(
    db: sqlite3.Connection,
    kind: Kind,
    table: str,
    stored: Row,
    write: Write | None,
    *,
    now: datetime,
) -> tuple[Any, list[tuple[EventType, Kind, Object]]]:
    if write is None:
        return to_object(stored), []
    values = _values(write.row)
    if write.archives:
        db.execute(
            f"INSERT INTO archived_{table} ({_COLUMNS}, archival_timestamp) "
            f"VALUES ({', '.join('?' * 12)})",
            (*values, timestamp(now)),
        )
        db.execute(f"DELETE FROM {table} WHERE id = ?", (write.row.id,))
    else:
        db.execute(
            f"UPDATE {table} SET name = ?, creator = ?, tenant = ?, labels = ?, annotations = ?, "
            "version = ?, creation_timestamp = ?, deletion_timestamp = ?, finalizers = ?, "
            "data = ? WHERE id = ?",
            (*values[1:], write.row.id),
        )
    obj = to_object(write.row)
    return obj, [(write.event, kind, obj)]


__all__ = ["SqliteStore", "StoreError"]
