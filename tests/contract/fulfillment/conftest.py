"""Fixtures of the fulfillment contract tests: each database the store supports (store
contract), and the real service process with the local issuer and two tenants' clients (HTTP
tests), so every tenancy test has someone to be isolated from."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from cloudkit.fulfillment.store import open_store
from cloudkit.fulfillment.store.base import Store
from cloudkit.local.apiserver.main import ApiServerHandle
from tests.harness.fulfillment import (
    ADMIN,
    FulfillmentService,
    Issuer,
    Tenant,
    service_account_token,
)
from tests.harness.postgresql import PostgresqlMissing, PostgresqlServer, start_postgresql

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
