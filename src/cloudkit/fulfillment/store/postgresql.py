"""The PostgreSQL store: the production database, through psycopg 3 (async).

Upstream's shape: a table per kind (`id`, the metadata columns, `finalizers text[]`,
`data jsonb`), `archived_<table>`, and a `notifications` table whose rows are announced with
`pg_notify` on commit. One writer path per process: changes are queued to one writer task that
owns one connection and applies the changes queued meanwhile in one transaction (group
commit), each locking its row (`SELECT … FOR UPDATE`) so writers in other processes are safe
too. Its events reach this process's subscribers right after the commit; events committed by
other processes arrive through `LISTEN`. Notifications older than a minute are deleted. Reads
go through a small pool. Every value travels as a parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from cloudkit.fulfillment.store.base import (
    Event,
    EventType,
    Kind,
    NotFound,
    Object,
    OrderKey,
    Page,
    Scope,
    Unavailable,
)
from cloudkit.fulfillment.store.feed import Feed, Subscription
from cloudkit.fulfillment.store.migrations import migrate_postgresql
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

log = logging.getLogger(__name__)

CHANNEL = "fulfillment_events"
BATCH_LIMIT = 500
NOTIFICATION_LIFETIME_S = 60.0
# pg_notify refuses payloads from 8000 bytes on; a bigger event is fetched by its id.
NOTIFY_LIMIT = 7900
READ_CONNECTIONS = 4
_COLUMNS = (
    "id",
    "name",
    "creator",
    "tenant",
    "labels",
    "annotations",
    "version",
    "creation_timestamp",
    "deletion_timestamp",
    "finalizers",
    "data",
)
_SELECT = sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS)
# What reads select: the three jsonb columns as one jsonb array, so psycopg decodes a row with
# one `json.loads` instead of three (decoding is most of a list's time).
_READ = sql.SQL(
    "id, name, creator, tenant, version, creation_timestamp, deletion_timestamp, finalizers, "
    "jsonb_build_array(labels, annotations, data)"
)
Conn = psycopg.AsyncConnection[TupleRow]
Emitted = list[tuple[EventType, Kind, Object]]


@dataclass
class _Change:
    apply: Callable[[Conn], Awaitable[tuple[Any, Emitted]]]
    done: asyncio.Future[Any]
    outcome: tuple[Any, Emitted] | None = None
    error: BaseException | None = None
    seqs: tuple[int, ...] = ()


_Changes = list[_Change]


class PostgresqlStore:
    """The Store protocol over a PostgreSQL database."""

    def __init__(self, url: str, *, now: Callable[[], datetime] = utc_now) -> None:
        self._url = url
        self._now = now
        self._origin = str(uuid.uuid4())
        self._feed = Feed()
        self._queue: _Changes = []
        self._queued = asyncio.Event()
        self._closing = False
        self._writer_db: Conn | None = None
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=READ_CONNECTIONS, open=False, kwargs={"autocommit": True}
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._cleaned_at = 0.0

    @classmethod
    async def open(cls, url: str, *, now: Callable[[], datetime] = utc_now) -> PostgresqlStore:
        """Connect, migrate to the latest schema, and start listening for other processes'
        events. Raises Unavailable when the database cannot be reached."""
        store = cls(url, now=now)
        try:
            async with await _connect(url) as db:
                await migrate_postgresql(db)
            await store._pool.open(wait=True, timeout=30)
        except (psycopg.Error, TimeoutError) as error:
            await store.close()
            raise Unavailable(f"database: {_reason(error)}") from error
        except BaseException:
            await store.close()
            raise
        store._tasks = [
            asyncio.create_task(store._write_batches(), name="store-writer"),
            asyncio.create_task(store._listen(), name="store-listener"),
        ]
        await asyncio.wait_for(store._listening.wait(), 30)
        return store

    # --- reads -------------------------------------------------------------------------------

    async def get(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        table = table_of(kind)
        async with self._reading() as db:
            row = await _fetch(db, table, id, scope)
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
        where, params = _scope_clause(scope)
        order_by, order_params = _order_clause(order)
        select = sql.SQL("SELECT {}, count(*) OVER () FROM {} WHERE {} ORDER BY {}").format(
            _READ, sql.Identifier(table), where, order_by
        )
        async with self._reading() as db:
            if match is None:
                cursor = await db.execute(
                    sql.SQL("{} LIMIT %s OFFSET %s").format(select),
                    [*params, *order_params, limit, offset],
                )
                rows = await cursor.fetchall()
                if rows:
                    total = rows[0][-1]
                else:
                    # Past the end (or nothing in scope): the window had no row to count on.
                    count = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                        sql.Identifier(table), where
                    )
                    (total,) = await (await db.execute(count, params)).fetchone() or (0,)
                return Page(items=[to_object(_row(r)) for r in rows], total=total)
            cursor = await db.execute(select, [*params, *order_params])
            objects = [to_object(_row(r)) for r in await cursor.fetchall()]
        matching = [obj for obj in objects if match(obj)]
        return Page(items=matching[offset : offset + limit], total=len(matching))

    def events(self) -> Subscription:
        return self._feed.subscribe()

    # --- changes -----------------------------------------------------------------------------

    async def create(self, kind: Kind, obj: Object) -> Object:
        table = table_of(kind)

        async def apply(db: Conn) -> tuple[Any, Emitted]:
            write = creation(obj, now=self._now())
            await _insert(db, table, write.row)
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

        async def apply(db: Conn) -> tuple[Any, Emitted]:
            stored = await _fetch_for_update(db, kind, table, id, scope)
            write = update_of(stored, change, expected_version=expected_version)
            return await _store(db, kind, table, stored, write, now=self._now())

        result: Object = await self._change(apply)
        return result

    async def delete(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        table = table_of(kind)

        async def apply(db: Conn) -> tuple[Any, Emitted]:
            stored = await _fetch_for_update(db, kind, table, id, scope)
            now = self._now()
            return await _store(db, kind, table, stored, deletion_of(stored, now=now), now=now)

        result: Object = await self._change(apply)
        return result

    async def signal(self, kind: Kind, id: str, *, scope: Scope) -> None:
        table = table_of(kind)

        async def apply(db: Conn) -> tuple[Any, Emitted]:
            stored = await _fetch_for_update(db, kind, table, id, scope)
            return None, [("SIGNALED", kind, to_object(stored))]

        await self._change(apply)

    async def close(self) -> None:
        self._closing = True
        self._queued.set()
        writer = self._tasks[0] if self._tasks else None
        if writer is not None:
            await writer
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._feed.close()
        if self._writer_db is not None:
            await self._writer_db.close()
        await self._pool.close()

    # --- the writer --------------------------------------------------------------------------

    async def _change(self, apply: Callable[[Conn], Awaitable[tuple[Any, Emitted]]]) -> Any:
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
                db = await self._writer()
                await self._commit(db, batch)
            except psycopg.Error as error:
                # The connection is gone: these changes fail (one lost in its COMMIT may have
                # happened: its caller hears Unavailable and re-reads); the next batch reconnects.
                await self._drop_writer()
                for change in batch:
                    change.outcome, change.error = None, Unavailable(f"database: {_reason(error)}")
            self._finish(batch)
            await self._clean_notifications()

    async def _writer(self) -> Conn:
        if self._writer_db is None or self._writer_db.closed:
            self._writer_db = await _connect(self._url)
        return self._writer_db

    async def _drop_writer(self) -> None:
        if self._writer_db is not None:
            with contextlib.suppress(psycopg.Error):
                await self._writer_db.close()
            self._writer_db = None

    async def _commit(self, db: Conn, batch: _Changes) -> None:
        """One transaction for the batch; when the database fails a change, the batch is
        rolled back and each change is applied alone so only that one fails."""
        try:
            await self._apply(db, batch)
        except psycopg.Error:
            if db.closed or db.broken:
                raise
            for change in batch:
                change.outcome, change.error = None, None
                try:
                    await self._apply(db, [change])
                except psycopg.Error as error:
                    if db.closed or db.broken:
                        raise
                    change.outcome, change.error = None, Unavailable(f"database: {_reason(error)}")

    async def _apply(self, db: Conn, changes: _Changes) -> None:
        async with db.transaction():
            for change in changes:
                try:
                    change.outcome = await change.apply(db)
                except psycopg.Error:
                    raise
                except Exception as error:
                    # Raised before the change wrote anything (see records.update_of).
                    change.outcome, change.error = None, error
            for change in changes:
                if change.outcome is not None:
                    change.seqs = await self._notify(db, change.outcome[1])

    async def _notify(self, db: Conn, emitted: Emitted) -> tuple[int, ...]:
        seqs = []
        for type_, kind, obj in emitted:
            payload = {"type": type_, "kind": kind, "object": obj, "origin": self._origin}
            text = json.dumps(payload, separators=(",", ":"))
            cursor = await db.execute(
                "INSERT INTO notifications (payload) VALUES (%s) RETURNING id", [Jsonb(payload)]
            )
            (seq,) = await cursor.fetchone() or (0,)
            announced = text[:-1] + f',"seq":{seq}}}'
            if len(announced.encode()) >= NOTIFY_LIMIT:
                announced = json.dumps({"seq": seq, "origin": self._origin})
            await db.execute("SELECT pg_notify(%s, %s)", [CHANNEL, announced])
            seqs.append(seq)
        return tuple(seqs)

    def _finish(self, batch: _Changes) -> None:
        # After the commit: this process's subscribers first, in commit order, then callers.
        for change in batch:
            if change.outcome is None:
                continue
            for seq, (type_, kind, obj) in zip(change.seqs, change.outcome[1], strict=True):
                self._feed.publish(Event(seq=seq, type=type_, kind=kind, object=obj))
        for change in batch:
            if change.done.done():
                continue
            if change.error is not None:
                change.done.set_exception(change.error)
            else:
                assert change.outcome is not None
                change.done.set_result(change.outcome[0])

    async def _clean_notifications(self) -> None:
        """Delete notifications older than their lifetime (a few times per lifetime)."""
        if time.monotonic() - self._cleaned_at < NOTIFICATION_LIFETIME_S / 4:
            return
        self._cleaned_at = time.monotonic()
        try:
            await (await self._writer()).execute(
                "DELETE FROM notifications "
                "WHERE creation_timestamp < now() - %s * interval '1 second'",
                [NOTIFICATION_LIFETIME_S],
            )
        except psycopg.Error as error:
            log.warning("old notifications not deleted (%s); next time", _reason(error))
            await self._drop_writer()

    # --- other processes' events -------------------------------------------------------------

    async def _listen(self) -> None:
        """Follow the channel; after a lost connection, reconnect and end every subscription
        (their clients re-list: what was committed meanwhile was not seen)."""
        backoff = 0.1
        while True:
            try:
                async with await _connect(self._url) as db:
                    await db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self._listening.set()
                    backoff = 0.1
                    async for notice in db.notifies():
                        await self._announce(notice.payload)
            except psycopg.Error as error:
                log.warning("event listener lost the database (%s); reconnecting", _reason(error))
            self._feed.end_subscriptions()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _announce(self, payload: str) -> None:
        try:
            announced = json.loads(payload)
            if announced.get("origin") == self._origin:
                return  # published by this process at its commit
            if "type" not in announced:
                async with self._reading() as db:
                    cursor = await db.execute(
                        "SELECT payload FROM notifications WHERE id = %s", [announced["seq"]]
                    )
                    found = await cursor.fetchone()
                if found is None:
                    return  # cleaned up already: at most once
                announced = {**found[0], "seq": announced["seq"]}
            event = Event(
                seq=int(announced["seq"]),
                type=announced["type"],
                kind=announced["kind"],
                object=announced["object"],
            )
        except (ValueError, KeyError, TypeError, psycopg.Error, Unavailable):
            log.exception("unreadable event notification skipped")
            return
        self._feed.publish(event)

    @contextlib.asynccontextmanager
    async def _reading(self) -> Any:
        try:
            async with self._pool.connection() as db:
                yield db
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise Unavailable(f"database: {_reason(error)}") from error
        except TimeoutError as error:
            raise Unavailable("database: no connection available") from error


async def _connect(url: str) -> Conn:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=30)


def _reason(error: BaseException) -> str:
    # The first line only: libpq's later lines may quote connection details.
    return (str(error).splitlines() or [type(error).__name__])[0]


def _scope_clause(scope: Scope) -> tuple[sql.Composable, list[Any]]:
    if scope.tenants is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("tenant = ANY(%s)"), [sorted(scope.tenants)]


def _order_clause(order: Sequence[OrderKey]) -> tuple[sql.Composable, list[Any]]:
    terms: list[sql.Composable] = []
    params: list[Any] = []
    for key in order:
        column, segments = order_target(key.path)
        direction = sql.SQL("DESC" if key.descending else "ASC")
        if segments:
            terms.append(sql.SQL("data #> %s {}").format(direction))
            params.append(list(segments))
        else:
            terms.append(sql.SQL("{} {}").format(sql.Identifier(column), direction))
    # Creation order, then the id, settles every tie: pages never overlap or skip.
    terms += [sql.SQL("creation_timestamp ASC"), sql.SQL("id ASC")]
    return sql.SQL(", ").join(terms), params


def _row(values: Sequence[Any]) -> Row:
    """A row selected with _READ."""
    labels, annotations, data = values[8]
    deleted = values[6]
    return Row(
        id=values[0],
        name=values[1],
        creator=values[2],
        tenant=values[3],
        labels=labels,
        annotations=annotations,
        version=values[4],
        creation_timestamp=timestamp(values[5]),
        deletion_timestamp=None if deleted is None else timestamp(deleted),
        finalizers=list(values[7]),
        data=data,
    )


async def _fetch(db: Conn, table: str, id: str, scope: Scope, *, lock: bool = False) -> Row | None:
    where, params = _scope_clause(scope)
    query = sql.SQL("SELECT {} FROM {} WHERE id = %s AND {}{}").format(
        _READ, sql.Identifier(table), where, sql.SQL(" FOR UPDATE" if lock else "")
    )
    cursor = await db.execute(query, [id, *params])
    found = await cursor.fetchone()
    return None if found is None else _row(found)


async def _fetch_for_update(db: Conn, kind: Kind, table: str, id: str, scope: Scope) -> Row:
    row = await _fetch(db, table, id, scope, lock=True)
    if row is None:
        raise NotFound(f"{kind}: no record {id!r}")
    return row


def _values(row: Row) -> list[Any]:
    return [
        row.id,
        row.name,
        row.creator,
        row.tenant,
        Jsonb(row.labels),
        Jsonb(row.annotations),
        row.version,
        row.creation_timestamp,
        row.deletion_timestamp,
        row.finalizers,
        Jsonb(row.data),
    ]


def _placeholders(count: int) -> sql.Composable:
    return sql.SQL(", ").join(sql.Placeholder() for _ in range(count))


async def _insert(db: Conn, table: str, row: Row) -> None:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), _SELECT, _placeholders(len(_COLUMNS))
    )
    await db.execute(query, _values(row))


async def _store(
    db: Conn, kind: Kind, table: str, stored: Row, write: Write | None, *, now: datetime
) -> tuple[Any, Emitted]:
    if write is None:
        return to_object(stored), []
    values = _values(write.row)
    if write.archives:
        archive = sql.SQL("INSERT INTO {} ({}, archival_timestamp) VALUES ({})").format(
            sql.Identifier(f"archived_{table}"), _SELECT, _placeholders(len(_COLUMNS) + 1)
        )
        await db.execute(archive, [*values, timestamp(now)])
        await db.execute(
            sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), [write.row.id]
        )
    else:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in _COLUMNS[1:]
        )
        update = sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
            sql.Identifier(table), assignments
        )
        await db.execute(update, [*values[1:], write.row.id])
    obj = to_object(write.row)
    return obj, [(write.event, kind, obj)]
