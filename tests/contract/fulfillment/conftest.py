"""Fixtures of the fulfillment contract tests: each database the store supports (store
contract), and the real service process with the local issuer and two tenants' clients (HTTP
tests), so every tenancy test has someone to be isolated from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cloudkit.local.issuer.server import IssuerHandle, start_issuer
from tests.harness.fulfillment import FulfillmentService, Tenant, started

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


# The HTTP tests: the service process, its issuer, two tenants.


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[IssuerHandle]:
    handle = await start_issuer(tmp_path / "issuer")
    yield handle
    await handle.stop()


@pytest.fixture
async def service(tmp_path: Path, issuer: IssuerHandle) -> AsyncIterator[FulfillmentService]:
    async for running in started(tmp_path / "fulfillment", issuer):
        yield running


async def _tenant(service: FulfillmentService, name: str) -> AsyncIterator[Tenant]:
    async with service.session(service.token(name, user=f"{name}-user")) as http:
        yield Tenant(name, http)


@pytest.fixture
async def acme(service: FulfillmentService) -> AsyncIterator[Tenant]:
    async for tenant in _tenant(service, "acme"):
        yield tenant


@pytest.fixture
async def globex(service: FulfillmentService) -> AsyncIterator[Tenant]:
    async for tenant in _tenant(service, "globex"):
        yield tenant
