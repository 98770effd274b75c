"""A database left at any earlier schema version is migrated to the latest when a store opens it."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from cloudkit.fulfillment.store import migrations
from cloudkit.fulfillment.store.base import Scope

CI = "compute_instances"
ROW = {
    "id": "3b7a6c1e-0000-4000-8000-000000000001",
    "name": "web",
    "creator": "alice",
    "tenant": "acme",
    "creation_timestamp": "2026-01-02T03:04:05.000006Z",
}


def _sqlite_at(url: str, version: int) -> None:
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        assert migrations.migrate_sqlite(db, to=version) == version
        if version >= 1:
            db.execute(
                "INSERT INTO compute_instances (id, name, creator, tenant, creation_timestamp, "
                "finalizers, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*ROW.values(), '["controller"]', '{"spec": {"template": "small"}}'),
            )
    finally:
        db.close()


async def _postgresql_at(url: str, version: int) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        assert await migrations.migrate_postgresql(db, to=version) == version
        if version >= 1:
            await db.execute(
                "INSERT INTO compute_instances (id, name, creator, tenant, creation_timestamp, "
                "finalizers, data) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (*ROW.values(), ["controller"], '{"spec": {"template": "small"}}'),
            )


def _versions(database_url: str) -> tuple[migrations.Migration, ...]:
    if database_url.startswith("sqlite"):
        return migrations.SQLITE
    return migrations.POSTGRESQL


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    # Each version starts from an empty database, not the one the other tests share.
    return fresh_database_url


@pytest.mark.parametrize("version", range(migrations.latest(migrations.SQLITE)))
async def test_every_earlier_version_migrates_to_the_latest(
    database_url: str, reopen: Any, version: int
) -> None:
    assert version < migrations.latest(_versions(database_url))
    if database_url.startswith("sqlite"):
        _sqlite_at(database_url, version)
    else:
        await _postgresql_at(database_url, version)

    store = await reopen()
    if version >= 1:
        record = await store.get(CI, ROW["id"], scope=Scope.of("acme"))
        assert record["metadata"]["name"] == "web"
        assert record["metadata"]["finalizers"] == ["controller"]
        assert record["metadata"]["version"] == 1
        assert record["spec"] == {"template": "small"}
    created = await store.create(CI, {"metadata": {"name": "new", "tenant": "acme"}})
    listed = await store.list(CI, scope=Scope.of("acme"))
    assert listed.items[-1] == created
    assert listed.total == (2 if version >= 1 else 1)
    # Opening it again finds nothing to do.
    await store.close()
    again = await reopen()
    assert (await again.list(CI, scope=Scope.of("acme"))).total == listed.total


def test_both_databases_have_one_history_numbered_one_by_one() -> None:
    # One schema: version N means the same tables on both databases.
    assert len(migrations.SQLITE) == len(migrations.POSTGRESQL)
    for history in (migrations.SQLITE, migrations.POSTGRESQL):
        assert [m.version for m in history] == list(range(1, len(history) + 1))
