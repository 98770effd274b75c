"""Fixtures of the fulfillment contract tests: each database the store supports (store
contract), and the real service process with the local issuer and two tenants' clients (HTTP
tests), so every tenancy test has someone to be isolated from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tests.harness.fulfillment import (
    ADMIN,
    FulfillmentService,
    Issuer,
    Tenant,
    service_account_token,
)

from cloudkit.fulfillment.store import open_store
from cloudkit.fulfillment.store.base import Store
from cloudkit.local.apiserver.main import ApiServerHandle

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


# The HTTP tests: one issuer and one service process for the session (starting them takes
# seconds on a loaded machine); each test gets tenants of its own, so none sees another's data.


@pytest.fixture(scope="session")
def fulfillment_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    issuer = Issuer(tmp_path_factory.mktemp("fulfillment-issuer") / "issuer")
    asyncio.run(issuer.start())
    yield issuer
    issuer.stop()


@pytest.fixture(scope="session")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    fulfillment_issuer: Issuer,
    apiserver_session: ApiServerHandle,
) -> Iterator[FulfillmentService]:
    """Tenants' JWTs from the issuer; the admin's ServiceAccount token by TokenReview."""
    running = FulfillmentService(
        tmp_path_factory.mktemp("fulfillment"),
        fulfillment_issuer,
        extra_args=("--kubeconfig", str(apiserver_session.kubeconfig), "--admin", ADMIN),
    )
    asyncio.run(running.start())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def admin_token(apiserver_session: ApiServerHandle) -> str:
    return service_account_token(apiserver_session.kubeconfig, ADMIN)


@pytest.fixture
async def admin(service: FulfillmentService, admin_token: str) -> AsyncIterator[Tenant]:
    """The private API's caller (as the service's controller would be)."""
    client = Tenant(ADMIN, service.session(admin_token))
    yield client
    await client.close()


@pytest.fixture
async def acme(service: FulfillmentService) -> AsyncIterator[Tenant]:
    tenant = service.tenant("acme")
    yield tenant
    await tenant.close()


@pytest.fixture
async def globex(service: FulfillmentService) -> AsyncIterator[Tenant]:
    tenant = service.tenant("globex")
    yield tenant
    await tenant.close()
