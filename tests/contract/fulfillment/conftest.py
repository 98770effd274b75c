"""The store contract's fixtures: every test runs against each database the store supports."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tests.harness.postgresql import PostgresqlMissing, PostgresqlServer, start_postgresql

from cloudkit.fulfillment.store import open_store
from cloudkit.fulfillment.store.base import Store

BACKENDS = ["sqlite", "postgresql"]

OpenStore = Callable[[], Awaitable[Store]]
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgresqlServer]:
    """One throwaway server for the session; a missing PostgreSQL fails the tests (never skips)."""
    missing: PostgresqlMissing | None = None
    try:
        server = start_postgresql()
    except PostgresqlMissing as error:
        missing = error
    if missing is not None:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgresql_database(postgresql: PostgresqlServer) -> str:
    """One database for the session's tests, emptied before each (CREATE DATABASE costs a
    second on a loaded machine; TRUNCATE a few milliseconds)."""
    return postgresql.create_database("store")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind, at the latest schema or none."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fulfillment.db'}"
    return PostgresqlServer.empty_database(request.getfixturevalue("postgresql_database"))


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database of each kind, without any table."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fulfillment.db'}"
    server: PostgresqlServer = request.getfixturevalue("postgresql")
    return server.create_database(f"store_{next(_databases)}")


@pytest.fixture
async def reopen(database_url: str) -> AsyncIterator[OpenStore]:
    """Opens (another) store on the test's database; every store opened is closed at the end."""
    opened: list[Store] = []

    async def open_() -> Store:
        store = await open_store(database_url)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def store(reopen: OpenStore) -> Store:
    return await reopen()
