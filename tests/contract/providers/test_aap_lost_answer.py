"""A launch whose answer is lost on the way back (the stack's fault relay delivers the request
and drops the answer): the provider reports the backend unavailable, and the lookup by
correlation id the lifecycle core makes next finds the job the launch did start; the
automation service ran exactly one job for it, so a retried launch is recognised, not repeated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from cloudkit.api.jobs import JobType
from cloudkit.local.automation.main import AutomationHandle
from cloudkit.local.stack.fault_links import relayed_url, target_of
from cloudkit.local.stack.faults import FaultRelay, Mode
from cloudkit.providers.aap import AapProvider
from cloudkit.providers.base import ProviderUnavailable
from tests.contract.providers.providers_support import instance

pytestmark = pytest.mark.stack

DEADLINE_S = 2.0


@pytest.fixture
async def relay(automation: AutomationHandle) -> AsyncIterator[FaultRelay]:
    relay = FaultRelay(*target_of(automation.url))
    await relay.start()
    yield relay
    await relay.stop()


async def _jobs_with(automation: AutomationHandle, correlation_id: str) -> list[str]:
    """The automation service's own list: job ids launched with this correlation id."""
    headers = {"Authorization": f"Bearer {automation.token}"}
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.get(f"{automation.url}/v2/jobs/?page_size=200") as answer,
    ):
        body = await answer.json()
    return [
        str(row["id"]) for row in body["results"] if correlation_id in (row.get("extra_vars") or "")
    ]


async def test_a_launch_whose_answer_is_lost_is_found_not_launched_again(
    automation: AutomationHandle, relay: FaultRelay
) -> None:
    provider = AapProvider(
        relayed_url(automation.url, relay.port),
        automation.token,
        "provision",
        "deprovision",
        timeout=DEADLINE_S,
        attempts=2,
    )
    try:
        since = datetime.now(UTC)
        await provider.find_job(JobType.PROVISION, "warm-up", since=since)  # template cached
        await relay.set_mode(Mode.LOSE_ANSWERS)
        with pytest.raises(ProviderUnavailable):
            await provider.trigger_provision(instance("lost"), correlation_id="corr-lost")
        await relay.set_mode(Mode.PASS)
        found = await provider.find_job(JobType.PROVISION, "corr-lost", since=since)
        assert found is not None, "the launch reached the service; its job must be found"
        assert await _jobs_with(automation, "corr-lost") == [found.job_id]
    finally:
        await provider.close()
