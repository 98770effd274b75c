"""Fixtures for the automation service's contract tests: a running service and HTTP clients.

The service is real (socket on 127.0.0.1, SQLite, ansible-runner); the clients are aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cloudkit.local.automation import AutomationHandle, start_automation_service
from tests.contract.automation.automation_client import TEMPLATES, Api


@pytest.fixture
def templates_file() -> Path:
    return TEMPLATES


@pytest.fixture
async def automation(tmp_path: Path) -> AsyncIterator[AutomationHandle]:
    handle = await start_automation_service(tmp_path / "state", TEMPLATES)
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture
async def api(automation: AutomationHandle) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {automation.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Api(session, automation.url)


@pytest.fixture
async def read_api(automation: AutomationHandle) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {automation.read_token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Api(session, automation.url)


@pytest.fixture
async def anonymous(automation: AutomationHandle) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, automation.url)
