"""Fixtures of the API server contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import Api

pytestmark = pytest.mark.stack


@pytest.fixture
async def api(apiserver: ApiServerHandle) -> AsyncIterator[Api]:
    """A raw JSON client for the `apiserver` fixture."""
    async with aiohttp.ClientSession() as session:
        yield Api(apiserver, session)
