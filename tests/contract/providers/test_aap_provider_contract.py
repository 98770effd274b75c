"""AapProvider against the real local AWX-compatible service, under /api and /api/controller."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from cloudkit.api.jobs import JobReading, JobState, JobType
from cloudkit.local.automation.main import AutomationHandle, start_automation_service
from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderUnauthorized,
    ProviderUnavailable,
)
from tests.contract.providers.providers_support import (
    TEMPLATES,
    ProviderFactory,
    instance,
)
from tests.waiting import until

pytestmark = pytest.mark.stack


def terminal(reading: JobReading) -> bool:
    return reading.state.terminal


async def test_launch_poll_successful_and_find_by_correlation_id(
    make_provider: ProviderFactory,
) -> None:
    provider = make_provider()
    since = datetime.now(UTC)
    launched = await provider.trigger_provision(instance(), correlation_id="corr-ok")
    assert launched.job_id.isdigit()
    assert (launched.state, launched.message) == (JobState.PENDING, "Provisioning job triggered")

    async def read() -> JobReading:
        return await provider.provision_status(launched.job_id)

    reading = await until(read, terminal, within=30.0)
    assert (reading.state, reading.message, reading.details) == (
        JobState.SUCCEEDED,
        "successful",
        "",
    )

    found = await provider.find_job(JobType.PROVISION, "corr-ok", since=since)
    assert found is not None
    assert (found.job_id, found.state) == (launched.job_id, JobState.SUCCEEDED)
    assert await provider.find_job(JobType.PROVISION, "corr-unknown", since=since) is None
    # A different template has no such launch.
    assert await provider.find_job(JobType.DEPROVISION, "corr-ok", since=since) is None


async def test_failing_playbook_then_cancel_and_purge(
    make_provider: ProviderFactory, automation: AutomationHandle, api_url: str
) -> None:
    provider = make_provider("provision fails")
    launched = await provider.trigger_provision(instance(), correlation_id="corr-fail")

    async def read() -> JobReading:
        return await provider.provision_status(launched.job_id)

    reading = await until(read, terminal, within=30.0)
    assert (reading.state, reading.message) == (JobState.FAILED, "failed")
    # The local service names the failed task and its message in job_explanation.
    assert "provisioning failed on purpose" in reading.details

    assert await provider.cancel_job(launched.job_id) is CancelAnswer.ALREADY_TERMINAL

    # Purge it through plain HTTP, as cleanup_jobs would.
    headers = {"Authorization": f"Bearer {automation.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.delete(f"{api_url}/v2/jobs/{launched.job_id}/") as response,
    ):
        assert response.status == 204
    purged = await provider.provision_status(launched.job_id)
    assert purged.purged
    assert (purged.state, purged.message) == (
        JobState.UNKNOWN,
        "job no longer exists in AAP (purged)",
    )
    with pytest.raises(ProviderNotFound):
        await provider.cancel_job(launched.job_id)


async def test_deprovision_waits_for_running_provision_then_cancel_lands(
    make_provider: ProviderFactory,
) -> None:
    provider = make_provider("provision slow")
    launched = await provider.trigger_provision(instance(), correlation_id="corr-slow")

    async def read() -> JobReading:
        return await provider.provision_status(launched.job_id)

    await until(read, lambda r: r.state is JobState.RUNNING, within=30.0)
    deleting = instance(provisionJob={"id": launched.job_id, "state": "Running"})

    # Safety net: no deprovision job while AAP reports the provision job active.
    waiting = await provider.trigger_deprovision(deleting, correlation_id="corr-d1")
    assert waiting.action is DeprovisionAction.WAITING
    assert (waiting.job_id, waiting.state) == (launched.job_id, JobState.RUNNING)

    assert await provider.cancel_job(launched.job_id) is CancelAnswer.REQUESTED
    # Long before the slow playbook could end on its own; how fast a cancel lands is a
    # benchmark figure (benchmarks/automation.py), not a deadline here.
    canceled = await until(read, terminal, within=20.0)
    assert canceled.state is JobState.CANCELED

    triggered = await provider.trigger_deprovision(deleting, correlation_id="corr-d2")
    assert triggered.action is DeprovisionAction.TRIGGERED
    assert triggered.block_deletion_on_failure
    assert (triggered.state, triggered.message) == (
        JobState.PENDING,
        "Deprovisioning job triggered",
    )

    async def read_deprovision() -> JobReading:
        return await provider.deprovision_status(triggered.job_id)

    assert (await until(read_deprovision, terminal, within=30.0)).state is JobState.SUCCEEDED


async def test_workflow_template_launch_status_and_find(make_provider: ProviderFactory) -> None:
    provider = make_provider("provision workflow")
    since = datetime.now(UTC)
    launched = await provider.trigger_provision(instance(), correlation_id="corr-wf")
    assert launched.job_id.startswith("workflow-")

    async def read() -> JobReading:
        return await provider.provision_status(launched.job_id)

    assert (await until(read, terminal, within=30.0)).state is JobState.SUCCEEDED
    found = await provider.find_job(JobType.PROVISION, "corr-wf", since=since)
    assert found is not None and found.job_id == launched.job_id
    # Polling after a restart needs no cache: a fresh provider reads the encoded id.
    fresh = make_provider("provision workflow")
    assert (await fresh.provision_status(launched.job_id)).state is JobState.SUCCEEDED


async def test_ignored_variables_are_an_error(make_provider: ProviderFactory) -> None:
    provider = make_provider("provision strict")
    with pytest.raises(ProviderNotAllowed) as caught:
        await provider.trigger_provision(instance(), correlation_id="corr-strict")
    assert "extra_vars" in str(caught.value)
    # The instance's status and events quote this: it names the template and the answer.
    assert "launching job template 'provision strict'" in str(caught.value)


async def test_unknown_template_is_not_found(make_provider: ProviderFactory) -> None:
    provider = make_provider("no such template")
    with pytest.raises(ProviderNotFound) as caught:
        await provider.trigger_provision(instance(), correlation_id="corr-none")
    assert "'no such template'" in str(caught.value)


async def test_wrong_token_is_unauthorized_and_never_shown(
    make_provider: ProviderFactory,
) -> None:
    token = "wrong-token-5f1c9e"
    provider = make_provider(token=token)
    with pytest.raises(ProviderUnauthorized) as caught:
        await provider.trigger_provision(instance(), correlation_id="corr-401")
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert caught.value.status == 401
    with pytest.raises(ProviderUnauthorized) as caught:
        await provider.provision_status("1")
    assert token not in str(caught.value)


async def test_service_stopped_is_unavailable_then_recovers(
    make_provider: ProviderFactory, automation: AutomationHandle, state_dir: Path, api_url: str
) -> None:
    provider = make_provider()
    launched = await provider.trigger_provision(instance(), correlation_id="corr-restart")

    async def read() -> JobReading:
        return await provider.provision_status(launched.job_id)

    await until(read, terminal, within=30.0)
    port = int(api_url.split(":")[2].split("/")[0])
    await automation.stop()
    with pytest.raises(ProviderUnavailable) as caught:
        await read()
    assert automation.token not in str(caught.value)

    restarted = await start_automation_service(state_dir, TEMPLATES, port=port)
    try:
        reading = await read()
        assert reading.state is JobState.SUCCEEDED
    finally:
        await restarted.stop()
