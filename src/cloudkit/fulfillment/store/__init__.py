"""The fulfillment store: the only code that speaks SQL (SQLite embedded, PostgreSQL in production).

One interface (base.Store), one implementation per database, versioned migrations beside them;
`open_store(url)` picks the implementation from the URL and migrates the database.
"""

from __future__ import annotations

from pathlib import Path

from cloudkit.fulfillment.store.base import Store

SQLITE_PREFIX = "sqlite:///"
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


async def open_store(url: str) -> Store:
    """The store at `url`, migrated to the latest schema.

    `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (as SQLAlchemy spells them),
    or a libpq URL `postgresql://user@host:port/database?…`. Raises ValueError for any other
    URL (without echoing it: it may carry a password)."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        from cloudkit.fulfillment.store.sqlite import SqliteStore

        return await SqliteStore.open(Path(url[len(SQLITE_PREFIX) :]))
    if url.startswith(POSTGRESQL_SCHEMES):
        from cloudkit.fulfillment.store.postgresql import PostgresqlStore

        return await PostgresqlStore.open(url)
    raise ValueError("database URL: expected sqlite:///PATH or postgresql://…")
