"""Fixtures for the provider contract tests: the real local automation service and providers.

The service is cloudkit.local.automation (aiohttp + SQLite + ansible-runner) on 127.0.0.1;
providers talk to it over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloudkit.local.automation.main import AutomationHandle, start_automation_service
from cloudkit.providers.aap import AapProvider
from tests.contract.providers.providers_support import TEMPLATES, ProviderFactory


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "automation-state"


@pytest.fixture
async def automation(state_dir: Path) -> AsyncIterator[AutomationHandle]:
    handle = await start_automation_service(state_dir, TEMPLATES)
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture(params=["api", "api/controller"])
def api_url(request: pytest.FixtureRequest, automation: AutomationHandle) -> str:
    """The API root without version, under both prefixes AWX and the AAP gateway serve."""
    return automation.url if request.param == "api" else automation.controller_url


@pytest.fixture
async def make_provider(
    automation: AutomationHandle, api_url: str
) -> AsyncIterator[ProviderFactory]:
    """Build AapProviders against the service (closed at teardown)."""
    made: list[AapProvider] = []

    def make(
        provision: str = "provision",
        deprovision: str = "deprovision",
        *,
        url: str | None = None,
        token: str | None = None,
        attempts: int = 2,
    ) -> AapProvider:
        provider = AapProvider(
            url or api_url,
            automation.token if token is None else token,
            provision,
            deprovision,
            attempts=attempts,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()
