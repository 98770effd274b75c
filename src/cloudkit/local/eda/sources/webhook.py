"""ansible-rulebook event source: an HTTP webhook (POST /<endpoint>, JSON object body).

Hand-written because the `ansible.eda` collection (which ships `ansible.eda.webhook`) cannot
be installed here: Galaxy is unreachable and the `ansible` PyPI package does not carry it.
Each POST becomes one event in the shape ansible.eda.webhook produces, so rulebooks written
for it match: {"payload": <body>, "meta": {"endpoint", "headers", "received_at"}}.

Loaded by `ansible-rulebook -S <this dir>` (runpy), so it imports only the standard library
and aiohttp (a dependency of ansible-rulebook). Arguments (rulebook `webhook:` source args):
  host, port        where to listen; port 0 picks a free port
  port_file         optional: the bound port is written there once the server listens
  token             optional: required as `Authorization: Bearer <token>` (scheme in any
                    case); a `token` query parameter is refused (401): URLs reach logs
  endpoints         optional list: only these paths are accepted (others 404)
GET /healthz answers 200 without auth and queues nothing (readiness probe).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

# Never copied into the event: events reach playbook extra vars and ansible-rulebook's logs.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _authorized(request: web.Request, token: str) -> bool:
    if "token" in request.query:
        return False  # whatever the header says: a token must never be put in a URL
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _event_headers(request: web.Request) -> dict[str, str]:
    return {
        name: value for name, value in request.headers.items() if name.lower() not in SECRET_HEADERS
    }


def _write_port_file(path: Path, port: int) -> None:
    """Atomically (rename), so a reader never sees a half-written number."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the webhook server has no TCP address")


async def main(queue: Any, args: dict[str, Any]) -> None:
    """Serve until cancelled (ansible-rulebook cancels sources on shutdown)."""
    host = str(args.get("host") or "127.0.0.1")
    port = int(args.get("port") or 0)
    token = str(args.get("token") or "")
    port_file = str(args.get("port_file") or "")
    allowed = {str(name) for name in args.get("endpoints") or []}
    accepted: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    engine_loop = asyncio.get_running_loop()

    async def receive(request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        if allowed and endpoint not in allowed:
            return web.json_response({"error": f"unknown endpoint {endpoint!r}"}, status=404)
        if not _authorized(request, token):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        meta = {
            "endpoint": endpoint,
            "headers": _event_headers(request),
            "received_at": datetime.now(UTC).isoformat(),
        }
        # 200 once the event is accepted in order: a 2xx tells the operator the launch happened.
        engine_loop.call_soon_threadsafe(accepted.put_nowait, {"payload": payload, "meta": meta})
        return web.json_response({"status": "accepted", "endpoint": endpoint})

    async def forward() -> None:
        """Hand accepted events to the rule engine, one at a time, in arrival order.

        ansible-rulebook's source queue holds one event (`asyncio.Queue(1)` in its app.py), so
        a put waits until the rule engine has taken the event before it: answering the POST
        only after the put made each of several webhooks sent at once wait for the others'
        rule evaluation (up to a second under load). An event accepted here is in this
        process's memory, as one in the rule engine's queue is; a stop loses either alike.
        """
        while True:
            await queue.put(await accepted.get())

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{endpoint}", receive)
    server = _ServerThread(app, host, port)
    server.start()
    await asyncio.to_thread(server.listening.wait)
    if server.error is not None:
        raise server.error
    if port_file:
        _write_port_file(Path(port_file), server.port)
    try:
        await forward()  # until cancelled
    finally:
        server.stop()


class _ServerThread(threading.Thread):
    """The webhook's HTTP server on an event loop of its own.

    ansible-rulebook runs sources, the rule engine and the start of each playbook on one event
    loop, and its synchronous parts (the rule engine's calls, preparing a playbook run) hold
    that loop: a webhook answered there waited for the playbooks of the webhooks before it.
    On its own loop, the answer waits only for the event to be handed over
    (`call_soon_threadsafe`); the rule engine takes it in arrival order (`forward`).
    """

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        super().__init__(name="webhook-server", daemon=True)
        self._app, self._host, self._port = app, host, port
        self._loop = asyncio.new_event_loop()
        self.listening = threading.Event()
        self.error: BaseException | None = None
        self.port = 0

    def run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app, access_log=None)
        try:
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self._host, self._port)
            self._loop.run_until_complete(site.start())
            self.port = _bound_port(runner)
        except BaseException as error:  # reported to main(), which raises it in the engine
            self.error = error
            self.listening.set()
            return
        self.listening.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.join(timeout=5.0)
