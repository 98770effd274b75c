"""The store's schema as numbered migrations, one list per database, and the runner of both.

One schema: the same tables and columns on both databases (upstream's shape: a table per kind
with `id`, the metadata the store queries by, `finalizers`, `data`, and `archived_<table>`), in
each database's own types. A database records the versions applied in `schema_migrations`;
opening a store applies the missing ones in order, each in its own transaction with its
version row, so a crash leaves the database at a version, never between two. Append only:
a released migration is never edited (a fix is the next migration).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from cloudkit.fulfillment.store.records import TABLES

# Serializes two processes migrating one PostgreSQL database at once (a key of our own).
POSTGRESQL_MIGRATION_LOCK = 0x636B6675  # "ckfu"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def _per_table(template: str) -> tuple[str, ...]:
    # Table names come from TABLES, never from a caller.
    return tuple(template.format(table=table) for table in TABLES.values())


_SQLITE_RECORDS = """
CREATE TABLE {table} (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL DEFAULT '',
    tenant TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{{}}',
    annotations TEXT NOT NULL DEFAULT '{{}}',
    version INTEGER NOT NULL DEFAULT 1,
    creation_timestamp TEXT NOT NULL,
    deletion_timestamp TEXT,
    finalizers TEXT NOT NULL DEFAULT '[]',
    data TEXT NOT NULL DEFAULT '{{}}'
)"""
_SQLITE_ARCHIVE = """
CREATE TABLE archived_{table} (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    creator TEXT NOT NULL,
    tenant TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    version INTEGER NOT NULL,
    creation_timestamp TEXT NOT NULL,
    deletion_timestamp TEXT,
    archival_timestamp TEXT NOT NULL,
    finalizers TEXT NOT NULL,
    data TEXT NOT NULL
)"""

SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "a table per kind and its archive",
        _per_table(_SQLITE_RECORDS) + _per_table(_SQLITE_ARCHIVE),
    ),
    Migration(
        2,
        "lists in creation order, per tenant and in all; the event sequence survives restarts",
        _per_table("CREATE INDEX {table}_by_creation ON {table} (creation_timestamp, id)")
        + _per_table("CREATE INDEX {table}_by_tenant ON {table} (tenant, creation_timestamp, id)")
        + (
            "CREATE TABLE event_sequence (last INTEGER NOT NULL)",
            "INSERT INTO event_sequence (last) VALUES (0)",
        ),
    ),
)

_POSTGRESQL_RECORDS = """
CREATE TABLE {table} (
    id text PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    creator text NOT NULL DEFAULT '',
    tenant text NOT NULL DEFAULT '',
    labels jsonb NOT NULL DEFAULT '{{}}',
    annotations jsonb NOT NULL DEFAULT '{{}}',
    version bigint NOT NULL DEFAULT 1,
    creation_timestamp timestamptz NOT NULL,
    deletion_timestamp timestamptz,
    finalizers text[] NOT NULL DEFAULT '{{}}',
    data jsonb NOT NULL DEFAULT '{{}}'
)"""
_POSTGRESQL_ARCHIVE = """
CREATE TABLE archived_{table} (
    id text PRIMARY KEY,
    name text NOT NULL,
    creator text NOT NULL,
    tenant text NOT NULL,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    version bigint NOT NULL,
    creation_timestamp timestamptz NOT NULL,
    deletion_timestamp timestamptz,
    archival_timestamp timestamptz NOT NULL,
    finalizers text[] NOT NULL,
    data jsonb NOT NULL
)"""

POSTGRESQL: tuple[Migration, ...] = (
    Migration(
        1,
        "a table per kind and its archive",
        _per_table(_POSTGRESQL_RECORDS) + _per_table(_POSTGRESQL_ARCHIVE),
    ),
    Migration(
        2,
        "lists in creation order, per tenant and in all; notifications for LISTEN",
        _per_table("CREATE INDEX {table}_by_creation ON {table} (creation_timestamp, id)")
        + _per_table("CREATE INDEX {table}_by_tenant ON {table} (tenant, creation_timestamp, id)")
        + (
            """CREATE TABLE notifications (
                id bigserial PRIMARY KEY,
                creation_timestamp timestamptz NOT NULL DEFAULT now(),
                payload jsonb NOT NULL
            )""",
            "CREATE INDEX notifications_by_creation ON notifications (creation_timestamp)",
        ),
    ),
)

_VERSIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL)"
)


def latest(migrations: tuple[Migration, ...]) -> int:
    return migrations[-1].version


def migrate_sqlite(
    db: sqlite3.Connection, migrations: tuple[Migration, ...] = SQLITE, *, to: int | None = None
) -> int:
    """Apply the migrations `db` lacks, up to version `to` (default: all); the version now.

    `db` must be in autocommit mode (isolation_level=None): each migration is one explicit
    transaction, taken with BEGIN IMMEDIATE so a second process waits instead of racing."""
    db.execute(_VERSIONS_TABLE)
    target = latest(migrations) if to is None else to
    for migration in migrations:
        if migration.version > target:
            break
        db.execute("BEGIN IMMEDIATE")
        try:
            if migration.version > sqlite_version(db):
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                    (migration.version, migration.description),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return sqlite_version(db)


def sqlite_version(db: sqlite3.Connection) -> int:
    (version,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(version)


async def migrate_postgresql(
    db: Any, migrations: tuple[Migration, ...] = POSTGRESQL, *, to: int | None = None
) -> int:
    """As migrate_sqlite, for a psycopg AsyncConnection in autocommit mode; an advisory lock
    held by each migration's transaction keeps two processes from applying it twice."""
    await db.execute(_VERSIONS_TABLE)
    target = latest(migrations) if to is None else to
    for migration in migrations:
        if migration.version > target:
            break
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(%s)", (POSTGRESQL_MIGRATION_LOCK,))
            cursor = await db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            (applied,) = await cursor.fetchone()
            if migration.version > applied:
                for statement in migration.statements:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                    (migration.version, migration.description),
                )
    return await postgresql_version(db)


async def postgresql_version(db: Any) -> int:
    cursor = await db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    (version,) = await cursor.fetchone()
    return int(version)
