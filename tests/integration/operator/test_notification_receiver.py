"""The job-notification receiver on a real socket: AWX-shaped POSTs wake the named instance;
a configured token is required as a Bearer header (scheme in any case); a token in the URL's
query is refused, even beside a good header; the body of a notification that presented the token
is handed on as its job's reading, and never without a token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from pydantic import SecretStr

from cloudkit.api.jobs import JobReading, JobState
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.notifications import NotificationReceiver
from cloudkit.operator.settings import Address

pytestmark = pytest.mark.stack

BODY = {
    "id": 12,
    "status": "running",
    "extra_vars": json.dumps(
        {
            "ansible_eda": {"event": {"payload": {"metadata": {"name": "vm", "namespace": "ns"}}}},
            "cloudkit_correlation_id": "c-1",
        }
    ),
}


@pytest.fixture
async def woken() -> AsyncIterator[tuple[NotificationReceiver, list[InstanceKey]]]:
    keys: list[InstanceKey] = []
    receiver = NotificationReceiver(
        Address("127.0.0.1", 0), keys.append, token=SecretStr("hush-123")
    )
    await receiver.start()
    try:
        yield receiver, keys
    finally:
        await receiver.stop()


async def test_token_is_required(woken: tuple[NotificationReceiver, list[InstanceKey]]) -> None:
    receiver, keys = woken
    url = f"http://127.0.0.1:{receiver.port}/notifications"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=BODY) as response:
            assert response.status == 401
        bad = {"Authorization": "Bearer wrong"}
        async with session.post(url, json=BODY, headers=bad) as response:
            assert response.status == 401
        assert keys == []
        for good in ("Bearer hush-123", "bearer hush-123", "BEARER  hush-123"):
            async with session.post(url, json=BODY, headers={"Authorization": good}) as response:
                assert response.status == 202, good
        basic = {"Authorization": "Basic hush-123"}
        async with session.post(url, json=BODY, headers=basic) as response:
            assert response.status == 401
    assert keys == [InstanceKey("ns", "vm")] * 3


async def test_token_in_the_query_is_refused(
    woken: tuple[NotificationReceiver, list[InstanceKey]],
) -> None:
    receiver, keys = woken
    url = f"http://127.0.0.1:{receiver.port}/notifications"
    good = {"Authorization": "Bearer hush-123"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=BODY, params={"token": "hush-123"}) as response:
            assert response.status == 401
        # Refused even beside a good header: nobody may be tempted to put a token in a URL.
        async with session.post(
            url, json=BODY, params={"token": "hush-123"}, headers=good
        ) as response:
            assert response.status == 401
    assert keys == []


async def test_query_token_refused_without_a_configured_token() -> None:
    keys: list[InstanceKey] = []
    receiver = NotificationReceiver(Address("127.0.0.1", 0), keys.append)
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=BODY, params={"token": "x"}) as response:
                assert response.status == 401
            async with session.post(url, json=BODY) as response:
                assert response.status == 202
    finally:
        await receiver.stop()
    assert keys == [InstanceKey("ns", "vm")]


async def test_foreign_and_malformed_bodies(
    woken: tuple[NotificationReceiver, list[InstanceKey]],
) -> None:
    receiver, keys = woken
    url = f"http://127.0.0.1:{receiver.port}/"
    headers = {"Authorization": "Bearer hush-123"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url, json={"id": 1, "extra_vars": "{}"}) as response:
            assert response.status == 202
        async with session.post(url, data=b"not json") as response:
            assert response.status == 400
        async with session.post(url, json=[1, 2]) as response:
            assert response.status == 400
    assert keys == []


Heard = list[tuple[InstanceKey, JobReading]]


def listener(heard: Heard, *, news: bool) -> Callable[[InstanceKey, JobReading], bool]:
    def hear(key: InstanceKey, reading: JobReading) -> bool:
        heard.append((key, reading))
        return news

    return hear


@pytest.mark.parametrize("news", [True, False])
async def test_an_authenticated_notification_is_its_job_s_reading(news: bool) -> None:
    """Handed on as a reading; it wakes the instance only if it may be news."""
    heard: Heard = []
    keys: list[InstanceKey] = []
    receiver = NotificationReceiver(
        Address("127.0.0.1", 0),
        keys.append,
        token=SecretStr("hush-123"),
        heard=listener(heard, news=news),
    )
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=BODY) as response:
                assert response.status == 401
            good = {"Authorization": "Bearer hush-123"}
            async with session.post(url, json=BODY, headers=good) as response:
                assert response.status == 202
    finally:
        await receiver.stop()
    assert heard == [(InstanceKey("ns", "vm"), JobReading("12", JobState.RUNNING, "running"))]
    assert keys == ([InstanceKey("ns", "vm")] if news else [])


async def test_without_a_token_a_notification_only_wakes() -> None:
    """An unauthenticated body could claim any state: it is never taken as a reading."""
    heard: Heard = []
    keys: list[InstanceKey] = []
    receiver = NotificationReceiver(
        Address("127.0.0.1", 0), keys.append, heard=listener(heard, news=False)
    )
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/"
        async with aiohttp.ClientSession() as session, session.post(url, json=BODY) as response:
            assert response.status == 202
    finally:
        await receiver.stop()
    assert keys == [InstanceKey("ns", "vm")]
    assert heard == []
