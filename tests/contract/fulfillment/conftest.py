"""Fixtures for the fulfillment API's HTTP tests: the local issuer, the real service process
(SQLite), and two tenants' clients, so every tenancy test has someone to be isolated from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cloudkit.local.issuer.server import IssuerHandle, start_issuer
from tests.harness.fulfillment import FulfillmentService, Tenant, started


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
