"""ansible-rulebook event source: an HTTP webhook (POST /<endpoint>, JSON body).

Each POST becomes one event {"payload": <body>, "meta": {"endpoint": ..., "received_at": ...}},
the shape of ansible.eda.webhook, so rulebooks written for it match. The token is required as
`?token=` or a Bearer header, compared in constant time. Loaded by `ansible-rulebook -S`, so it
imports only the standard library and aiohttp (a dependency of ansible-rulebook).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


def _authorized(request: web.Request, token: str) -> bool:
    if not token:
        return True
    given = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header[len("Bearer ") :]
    return hmac.compare_digest(given.encode(), token.encode())


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Serve until cancelled (ansible-rulebook cancels sources on shutdown)."""
    host, port, token = args.get("host", "127.0.0.1"), int(args["port"]), str(args.get("token", ""))

    async def receive(request: web.Request) -> web.Response:
        if not _authorized(request, token):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        endpoint = request.match_info["endpoint"]
        received_at = datetime.now(UTC).isoformat()
        await queue.put(
            {"payload": payload, "meta": {"endpoint": endpoint, "received_at": received_at}}
        )
        return web.json_response({"status": "accepted", "endpoint": endpoint})

    app = web.Application()
    app.router.add_post("/{endpoint}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await runner.cleanup()
