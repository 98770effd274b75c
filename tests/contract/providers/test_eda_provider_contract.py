"""EdaProvider against a real aiohttp webhook receiver that records what it was sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from cloudkit.api.jobs import JobState, JobType
from cloudkit.api.names import AUTOMATION_FINALIZER
from cloudkit.providers.base import (
    DeprovisionAction,
    ProviderNotAllowed,
    ProviderRateLimited,
    ProviderUnavailable,
)
from cloudkit.providers.eda import EdaProvider
from tests.contract.providers.providers_support import instance

pytestmark = pytest.mark.stack


@dataclass
class Receiver:
    """An EDA webhook source stand-in: records POSTs, answers `status`."""

    url: str
    posts: list[tuple[str, Any]] = field(default_factory=list)
    status: int = 200
    authorizations: list[str | None] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def record(request: web.Request) -> web.Response:
        state.posts.append((request.path, json.loads(await request.read())))
        state.authorizations.append(request.headers.get("Authorization"))
        state.queries.append(request.query_string)
        return web.Response(status=state.status, text="ok")

    app = web.Application()
    app.router.add_post("/{hook}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def eda(receiver: Receiver) -> AsyncIterator[EdaProvider]:
    provider = EdaProvider(f"{receiver.url}/create", f"{receiver.url}/delete")
    try:
        yield provider
    finally:
        await provider.close()


async def test_provision_posts_the_instance(eda: EdaProvider, receiver: Receiver) -> None:
    vm = instance(jobs=[{"jobID": "eda-webhook-2", "type": "provision"}])
    launched = await eda.trigger_provision(vm, correlation_id="c1")
    assert receiver.posts == [("/create", vm)]
    assert launched.job_id == "eda-webhook-3"
    assert (launched.state, launched.message) == (
        JobState.RUNNING,
        "Webhook sent to EDA, provisioning in progress",
    )
    reading = await eda.provision_status(launched.job_id)
    assert (reading.state, reading.message) == (
        JobState.UNKNOWN,
        "EDA provider does not support status polling",
    )
    assert not eda.capabilities.polls_jobs
    assert await eda.find_job(JobType.PROVISION, "c1", since=datetime.now(UTC)) is None
    with pytest.raises(ProviderNotAllowed):
        await eda.cancel_job(launched.job_id)


async def test_deprovision_needs_the_automation_finalizer(
    eda: EdaProvider, receiver: Receiver
) -> None:
    bare = instance()
    assert (await eda.trigger_deprovision(bare, correlation_id="d")).action is (
        DeprovisionAction.SKIPPED
    )
    assert receiver.posts == []
    held = instance()
    held["metadata"]["finalizers"] = [AUTOMATION_FINALIZER]
    result = await eda.trigger_deprovision(held, correlation_id="d")
    assert result.action is DeprovisionAction.TRIGGERED
    assert (result.job_id, result.state, result.block_deletion_on_failure) == (
        "eda-webhook-1",
        JobState.RUNNING,
        False,
    )
    assert result.message == "Webhook sent to EDA, deprovisioning in progress"
    assert receiver.posts == [("/delete", held)]
    assert (await eda.deprovision_status(result.job_id)).state is JobState.UNKNOWN


async def test_errors_are_typed_and_not_rate_counted(receiver: Receiver) -> None:
    provider = EdaProvider(
        f"{receiver.url}/create", f"{receiver.url}/delete", minimum_request_interval=60
    )
    try:
        receiver.status = 503
        with pytest.raises(ProviderUnavailable):
            await provider.trigger_provision(instance(), correlation_id="c")
        receiver.status = 400
        with pytest.raises(ProviderNotAllowed):
            await provider.trigger_provision(instance(), correlation_id="c")
        receiver.status = 202  # failures did not start the interval
        await provider.trigger_provision(instance(), correlation_id="c")
        assert len(receiver.posts) == 3
    finally:
        await provider.close()


async def test_connection_refused_is_unavailable() -> None:
    provider = EdaProvider("http://127.0.0.1:9/create", "http://127.0.0.1:9/delete")
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.trigger_provision(instance(), correlation_id="c")
    finally:
        await provider.close()


async def test_rate_limit_is_respected_per_instance(receiver: Receiver) -> None:
    interval = 0.5
    provider = EdaProvider(
        f"{receiver.url}/create", f"{receiver.url}/delete", minimum_request_interval=interval
    )
    try:
        await provider.trigger_provision(instance("vm1"), correlation_id="c")
        with pytest.raises(ProviderRateLimited) as caught:
            await provider.trigger_provision(instance("vm1"), correlation_id="c")
        rejected_at = time.monotonic()  # after the check, so rejected_at + retry_after is late
        assert 0 < caught.value.retry_after <= interval
        # Another instance, or the other webhook, is not held back.
        await provider.trigger_provision(instance("vm2"), correlation_id="c")
        assert [body["metadata"]["name"] for _, body in receiver.posts] == ["vm1", "vm2"]

        # The retry_after is the remaining time: waiting exactly that long is enough.
        # (Upstream answered the elapsed time, which would be far too short here.)
        wait = rejected_at + caught.value.retry_after + 0.01 - time.monotonic()
        await asyncio.sleep(max(0.0, wait))
        await provider.trigger_provision(instance("vm1"), correlation_id="c")
        assert len(receiver.posts) == 3
    finally:
        await provider.close()


async def test_token_is_sent_as_a_bearer_header_never_in_the_url(receiver: Receiver) -> None:
    token = "eda-hook-secret-77"
    provider = EdaProvider(f"{receiver.url}/create", f"{receiver.url}/delete", token=token)
    try:
        await provider.trigger_provision(instance(), correlation_id="c")
        held = instance()
        held["metadata"]["finalizers"] = [AUTOMATION_FINALIZER]
        await provider.trigger_deprovision(held, correlation_id="d")
        receiver.status = 401
        with pytest.raises(ProviderNotAllowed) as refused:
            await provider.trigger_provision(instance("vm2"), correlation_id="c")
    finally:
        await provider.close()
    assert [path for path, _ in receiver.posts] == ["/create", "/delete", "/create"]
    assert receiver.authorizations == [f"Bearer {token}"] * 3
    assert receiver.queries == [""] * 3
    assert token not in str(refused.value)


async def test_without_a_token_no_authorization_is_sent(
    eda: EdaProvider, receiver: Receiver
) -> None:
    await eda.trigger_provision(instance(), correlation_id="c")
    assert receiver.authorizations == [None]  # upstream's webhooks carry no auth
