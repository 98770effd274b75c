"""Job notifications over real sockets: the configured headers, method and basic auth reach the
receiver; refused connections and 401 answers are logged without the URL's user info or
query and without any header value."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from cloudkit.local.automation import start_automation_service
from cloudkit.local.automation.notify import Notifier
from cloudkit.local.automation.planning import WebhookNotification
from tests.contract.automation.automation_client import TEMPLATES, Api

pytestmark = pytest.mark.stack

HEADER_SECRET = "hdr-secret-3141"
QUERY_SECRET = "query-secret-2718"
PASSWORD = "basic-secret-1618"
WITHIN_S = 30.0


@dataclass
class Seen:
    method: str
    path: str
    query: str
    authorization: str | None
    tenant: str | None
    status: str


@dataclass
class Receiver:
    url: str = ""
    answer: int = 204
    seen: list[Seen] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, check: Callable[[], bool]) -> None:
        async def satisfied() -> None:
            async with self.changed:
                await self.changed.wait_for(check)

        await asyncio.wait_for(satisfied(), WITHIN_S)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        state.seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                request.headers.get("Authorization"),
                request.headers.get("X-Tenant"),
                str(body.get("status")),
            )
        )
        async with state.changed:
            state.changed.notify_all()
        return web.Response(status=state.answer)

    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def test_headers_method_and_basic_auth_are_sent(receiver: Receiver) -> None:
    notifier = Notifier()
    target = WebhookNotification(
        url=receiver.url,
        headers=(("X-Tenant", "t1"),),
        http_method="PUT",
        username="awx",
        password=PASSWORD,
    )
    bearer = WebhookNotification(
        url=receiver.url, headers=(("Authorization", f"Bearer {HEADER_SECRET}"),)
    )
    try:
        for status in ("pending", "running", "successful"):
            notifier.notify(target, {"status": status})
        notifier.notify(bearer, {"status": "bearer"})
    finally:
        await notifier.close()  # delivers what is queued first
    put = [s for s in receiver.seen if s.method == "PUT"]
    assert [s.status for s in put] == ["pending", "running", "successful"]  # in order
    basic = "Basic " + base64.b64encode(f"awx:{PASSWORD}".encode()).decode()
    assert {(s.authorization, s.tenant, s.query) for s in put} == {(basic, "t1", "")}
    [post] = [s for s in receiver.seen if s.method == "POST"]
    assert (post.authorization, post.query) == (f"Bearer {HEADER_SECRET}", "")


async def test_refused_connection_is_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    target = WebhookNotification(
        url=f"http://127.0.0.1:{port}/hook?token={QUERY_SECRET}",
        headers=(("Authorization", f"Bearer {HEADER_SECRET}"),),
    )
    notifier = Notifier()
    with caplog.at_level(logging.WARNING, logger="cloudkit.local.automation.notify"):
        notifier.notify(target, {"status": "pending"})
        await notifier.close()
    text = logged(caplog)
    assert f"notification to http://127.0.0.1:{port}/hook failed: ClientConnectorError" in text
    assert HEADER_SECRET not in text and QUERY_SECRET not in text


async def test_401_is_logged_without_secrets(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer = 401
    target = WebhookNotification(
        url=f"{receiver.url}?token={QUERY_SECRET}",
        headers=(("Authorization", f"Bearer {HEADER_SECRET}"),),
    )
    notifier = Notifier()
    with caplog.at_level(logging.WARNING, logger="cloudkit.local.automation.notify"):
        notifier.notify(target, {"status": "pending"})
        await notifier.close()
    assert [s.status for s in receiver.seen] == ["pending"]
    text = logged(caplog)
    assert f"notification to {receiver.url} answered 401" in text
    assert HEADER_SECRET not in text and QUERY_SECRET not in text


async def test_service_sends_the_template_headers(tmp_path: Path, receiver: Receiver) -> None:
    playbook = str(TEMPLATES.parent / "playbooks/ok.yml")
    notification = {"url": receiver.url, "headers": {"Authorization": f"Bearer {HEADER_SECRET}"}}
    templates = [{"name": "noisy", "playbook": playbook, "notification": notification}]
    handle = await start_automation_service(tmp_path / "state", templates)
    try:
        headers = {"Authorization": f"Bearer {handle.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            api = Api(session, handle.url)
            launched = await api.launch("noisy")
            assert (await api.wait_status(launched["job"]))["status"] == "successful"
        await receiver.wait_for(lambda: any(s.status == "successful" for s in receiver.seen))
    finally:
        await handle.stop()
    assert [s.status for s in receiver.seen] == ["running", "successful"]  # started, success
    assert {(s.authorization, s.query) for s in receiver.seen} == {(f"Bearer {HEADER_SECRET}", "")}
