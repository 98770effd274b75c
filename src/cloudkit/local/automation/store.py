"""SQLite persistence for the automation service: templates, jobs and job events (no HTTP).

Every call runs on the event loop thread; statements are small and SQLite in WAL mode answers
them in microseconds, so a thread pool would cost more than it saves. Timestamps are stored as
fixed-width UTC ISO strings so that lexical comparison in SQL equals time comparison.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudkit.local.automation.listing import ListQuery
from cloudkit.local.private import private_sqlite

ACTIVE_STATUSES = ("new", "pending", "waiting", "running")
TERMINAL_STATUSES = ("successful", "failed", "error", "canceled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    UNIQUE (kind, name)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    template_id INTEGER NOT NULL,
    workflow_job_id INTEGER,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    canceled_on TEXT,
    cancel_flag INTEGER NOT NULL DEFAULT 0,
    job_explanation TEXT NOT NULL DEFAULT '',
    result_traceback TEXT NOT NULL DEFAULT '',
    extra_vars TEXT NOT NULL DEFAULT '{}',
    artifacts TEXT NOT NULL DEFAULT '{}',
    event_processing_finished INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS events (
    job_id INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    event TEXT NOT NULL,
    uuid TEXT NOT NULL,
    parent_uuid TEXT NOT NULL,
    host_name TEXT NOT NULL,
    task TEXT NOT NULL,
    stdout TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    created TEXT NOT NULL,
    event_data TEXT NOT NULL,
    PRIMARY KEY (job_id, counter)
);
"""

# Columns a list filter may name; anything else is rejected before it reaches SQL.
JOB_COLUMNS = frozenset(
    {"id", "type", "name", "status", "created", "started", "finished", "template_id"}
)
TEMPLATE_COLUMNS = frozenset({"id", "name"})
EVENT_COLUMNS = frozenset({"counter", "event", "start_line", "host_name", "uuid", "failed"})


def utcnow() -> str:
    """The current time in the API's (and the store's) timestamp format."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Template:
    id: int
    kind: str
    name: str
    spec: dict[str, Any]


class Store:
    """Owns the SQLite connection; rows come back as plain dicts."""

    def __init__(self, path: Path) -> None:
        # 0600 before SQLite opens it, so its WAL files are too (notification headers and
        # job variables may carry tokens).
        private_sqlite(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- templates -----------------------------------------------------------------------------

    def upsert_template(self, kind: str, name: str, spec: dict[str, Any]) -> Template:
        """Insert or refresh a template; the id stays stable for a (kind, name) pair."""
        self._db.execute(
            "INSERT INTO templates (kind, name, spec) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec",
            (kind, name, json.dumps(spec)),
        )
        found = self.template_by_name(kind, name)
        assert found is not None
        return found

    def template_by_name(self, kind: str, name: str) -> Template | None:
        row = self._db.execute(
            "SELECT * FROM templates WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return _template(row) if row else None

    def template(self, kind: str, template_id: int) -> Template | None:
        row = self._db.execute(
            "SELECT * FROM templates WHERE kind = ? AND id = ?", (kind, template_id)
        ).fetchone()
        return _template(row) if row else None

    def list_templates(self, kind: str, query: ListQuery) -> tuple[int, list[Template]]:
        where, params = query.sql_where(TEMPLATE_COLUMNS)
        where = f"kind = ? AND ({where})"
        count, rows = self._page("templates", where, [kind, *params], query, TEMPLATE_COLUMNS)
        return count, [_template_from(r) for r in rows]

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        *,
        type: str,
        name: str,
        template_id: int,
        extra_vars: dict[str, Any],
        workflow_job_id: int | None = None,
        status: str = "pending",
    ) -> dict[str, Any]:
        cursor = self._db.execute(
            "INSERT INTO jobs (type, name, template_id, workflow_job_id, status, created, "
            "extra_vars) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (type, name, template_id, workflow_job_id, status, utcnow(), json.dumps(extra_vars)),
        )
        job = self.job(int(cursor.lastrowid or 0))
        assert job is not None
        return job

    def job(self, job_id: int, type: str | None = None) -> dict[str, Any] | None:
        sql, params = "SELECT * FROM jobs WHERE id = ?", [job_id]
        if type is not None:
            sql += " AND type = ?"
            params.append(type)  # type: ignore[arg-type]
        row = self._db.execute(sql, params).fetchone()
        return dict(row) if row else None

    def update_job(self, job_id: int, **fields: Any) -> dict[str, Any] | None:
        """Set columns on a job; returns the fresh row, or None when the job is gone."""
        if fields:
            assignments = ", ".join(f"{column} = ?" for column in fields)
            self._db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id]
            )
        return self.job(job_id)

    def list_jobs(self, query: ListQuery, types: Sequence[str]) -> tuple[int, list[dict[str, Any]]]:
        where, params = query.sql_where(JOB_COLUMNS)
        marks = ", ".join("?" for _ in types)
        where = f"type IN ({marks}) AND ({where})"
        return self._page("jobs", where, [*types, *params], query, JOB_COLUMNS)

    def workflow_children(self, workflow_job_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE workflow_job_id = ? ORDER BY id", (workflow_job_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def jobs_with_status(self, statuses: Iterable[str]) -> list[dict[str, Any]]:
        wanted = list(statuses)
        marks = ", ".join("?" for _ in wanted)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY id", wanted
        ).fetchall()
        return [dict(r) for r in rows]

    def delete_job(self, job_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # -- events --------------------------------------------------------------------------------

    def add_events(self, job_id: int, events: Iterable[dict[str, Any]]) -> None:
        rows = [_event_row(job_id, event) for event in events]
        if rows:
            self._db.executemany(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def list_events(self, job_id: int, query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
        where, params = query.sql_where(EVENT_COLUMNS)
        return self._page(
            "events", f"job_id = ? AND ({where})", [job_id, *params], query, EVENT_COLUMNS
        )

    def stdout(self, job_id: int) -> str:
        rows = self._db.execute(
            "SELECT stdout FROM events WHERE job_id = ? AND stdout != '' ORDER BY start_line, "
            "counter",
            (job_id,),
        ).fetchall()
        return "".join(row[0] + "\n" for row in rows)

    def failed_task_message(self, job_id: int) -> tuple[str, str] | None:
        """(task name, msg) of the last failed runner event, for job_explanation/traceback."""
        row = self._db.execute(
            "SELECT task, event_data FROM events WHERE job_id = ? AND failed = 1 "
            "AND event LIKE 'runner_on_%' ORDER BY counter DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        result = json.loads(row["event_data"]).get("res") or {}
        message = result.get("msg") or result.get("stderr") or json.dumps(result)
        return str(row["task"]), str(message)

    # -- helpers -------------------------------------------------------------------------------

    def _page(
        self,
        table: str,
        where: str,
        params: list[Any],
        query: ListQuery,
        columns: frozenset[str],
    ) -> tuple[int, list[dict[str, Any]]]:
        params = [_sqlite_number(p) for p in params]
        counted = self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
        count = int(counted.fetchone()[0])
        order = query.sql_order(columns)
        offset = (query.page - 1) * query.page_size
        if offset >= count:
            return count, []  # past the end (also: an offset SQLite cannot hold)
        rows = self._db.execute(
            f"SELECT * FROM {table} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, min(query.page_size, count), offset],
        ).fetchall()
        return count, [dict(r) for r in rows]


def _sqlite_number(value: Any) -> Any:
    """An int SQLite cannot bind (2^63 and past) as an infinite float: compared with an
    INTEGER column it still orders right (`id < 10**30` is every row, `id = 10**30` none)."""
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return float("inf") if value > 0 else float("-inf")
    return value


def _template(row: sqlite3.Row) -> Template:
    return _template_from(dict(row))


def _template_from(row: dict[str, Any]) -> Template:
    return Template(id=row["id"], kind=row["kind"], name=row["name"], spec=json.loads(row["spec"]))


def _event_row(job_id: int, event: dict[str, Any]) -> tuple[Any, ...]:
    data = event.get("event_data") or {}
    return (
        job_id,
        int(event.get("counter", 0)),
        str(event.get("event", "verbose")),
        str(event.get("uuid", "")),
        str(event.get("parent_uuid", "") or data.get("parent_uuid", "") or ""),
        str(data.get("host", "") or ""),
        str(data.get("task", "") or ""),
        str(event.get("stdout", "") or ""),
        int(event.get("start_line", 0)),
        int(event.get("end_line", 0)),
        int(
            bool(
                event.get("event", "").endswith(("_failed", "_unreachable"))
                and not data.get("ignore_errors")
            )
        ),
        int(
            bool((data.get("res") or {}).get("changed", False))
            if isinstance(data.get("res"), dict)
            else 0
        ),
        _event_time(event.get("created")),
        json.dumps(data, default=str),
    )


def _event_time(created: Any) -> str:
    if isinstance(created, str):
        try:
            return format_time(datetime.fromisoformat(created))
        except ValueError:
            pass
    return utcnow()
