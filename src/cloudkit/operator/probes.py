"""The operator's probes on CLOUDKIT_HEALTH_ADDRESS: /healthz (alive) and /readyz (ready).

Alive: the event loop answers. Ready: this replica leads, or it is a warm standby (its watches
have started and the API server answers its election), so a rolling update waits for the new
replica to be able to take over before stopping the old one. kopf's own liveness endpoint
would bind the same address, so both paths are served here instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from cloudkit.operator.settings import Address


class ProbeServer:
    def __init__(self, address: Address, *, ready: Callable[[], dict[str, Any] | None]) -> None:
        """`ready()` returns what to show when ready, None when not."""
        self._address = address
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, _: web.Request) -> web.Response:
        shown = self._ready()
        if shown is None:
            return web.json_response({"ready": False}, status=503)
        return web.json_response({"ready": True, **shown})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._address.host, self._address.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
