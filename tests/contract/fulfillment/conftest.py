"""The store contract's fixtures: every test runs against each database the store supports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cloudkit.fulfillment.store import open_store
from cloudkit.fulfillment.store.base import Store

BACKENDS = ["sqlite"]

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    return f"sqlite:///{tmp_path / 'fulfillment.db'}"


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
