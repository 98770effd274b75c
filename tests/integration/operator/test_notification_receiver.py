"""The job-notification receiver on a real socket: AWX-shaped POSTs wake the named instance;
a configured token is required as a Bearer header or a token query parameter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from cloudkit.operator.kube import InstanceKey
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
        good = {"Authorization": "Bearer hush-123"}
        async with session.post(url, json=BODY, headers=good) as response:
            assert response.status == 202
        async with session.post(f"{url}?token=hush-123", json=BODY) as response:
            assert response.status == 202
    assert keys == [InstanceKey("ns", "vm")] * 2


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
