"""The AAP start-up check on real sockets: a controller that starts late is waited for (the
stack starts the operator beside it); a rejected token fails at once, naming the variable."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from cloudkit.local.stack.ports import free_port
from cloudkit.operator.settings import OperatorSettings, load_settings
from cloudkit.operator.startup import StartupError, check_aap

pytestmark = pytest.mark.stack

TOKEN = "good-token-4411"


def settings_for(port: int, token: str = TOKEN, timeout: str = "10s") -> OperatorSettings:
    return load_settings(
        {
            "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
            "CLOUDKIT_AAP_URL": f"http://127.0.0.1:{port}/api",
            "CLOUDKIT_AAP_TOKEN": token,
            "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
            "CLOUDKIT_AAP_STARTUP_TIMEOUT": timeout,
        }
    )


async def serve_me(port: int) -> web.AppRunner:
    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"detail": "Authentication credentials were not provided."}, status=401
            )
        return web.json_response({"count": 1, "results": [{"username": "admin"}]})

    app = web.Application()
    app.router.add_get("/api/v2/me/", me)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_late_controller_is_waited_for() -> None:
    port = free_port()

    async def start_late() -> web.AppRunner:
        await asyncio.sleep(0.5)  # the controller's start-up, not a wait for a result
        return await serve_me(port)

    starting = asyncio.create_task(start_late())
    await asyncio.wait_for(check_aap(settings_for(port)), 15)
    await (await starting).cleanup()


async def test_a_rejected_token_fails_at_once() -> None:
    """At once: not after retrying until the start-up timeout, here ten minutes (a retrying
    check runs into the two-minute deadline; no load makes one 401 take that long)."""
    port = free_port()
    runner = await serve_me(port)
    try:
        with pytest.raises(StartupError) as raised:
            await asyncio.wait_for(
                check_aap(settings_for(port, token="wrong-token-9", timeout="10m")), 120
            )
        assert "CLOUDKIT_AAP_TOKEN" in str(raised.value)
        assert "wrong-token-9" not in str(raised.value)
    finally:
        await runner.cleanup()


async def test_nothing_listening_fails_after_the_timeout() -> None:
    with pytest.raises(StartupError) as raised:
        await asyncio.wait_for(check_aap(settings_for(free_port(), timeout="500ms")), 10)
    assert "CLOUDKIT_AAP_URL" in str(raised.value)
