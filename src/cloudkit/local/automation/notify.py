"""Job status webhooks, like AWX notification templates of the webhook type.

Fire-and-forget from the executor's point of view, but ordered per target: one sender task per
notification target drains a queue, so a receiver sees pending → running → successful in that
order. Each request has a short timeout and failures are only logged.

A target's credentials travel in its headers (or basic auth), as AWX sends them. Log lines
name a target by `redacted_url` only (scheme, host, port, path): neither the headers, nor
user info, nor a query string a user may have put a token in ever reach a log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from cloudkit.local.automation.planning import WebhookNotification

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0


def redacted_url(url: str) -> str:
    """The URL as logs may show it: no user info, query or fragment (they may hold secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def request_headers(target: WebhookNotification) -> dict[str, str]:
    """The target's headers, plus basic auth (RFC 7617) when it has a username or password."""
    headers = dict(target.headers)
    if target.username or target.password:
        pair = f"{target.username}:{target.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


class Notifier:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[WebhookNotification, asyncio.Queue[dict[str, Any] | None]] = {}
        self._senders: list[asyncio.Task[None]] = []

    def notify(self, target: WebhookNotification, payload: dict[str, Any]) -> None:
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = asyncio.Queue()
            self._senders.append(asyncio.create_task(self._send_all(target, queue)))
        queue.put_nowait(payload)

    async def close(self) -> None:
        """Deliver what is queued (each bounded by the timeout), then stop."""
        for queue in self._queues.values():
            queue.put_nowait(None)
        if self._senders:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._senders), TIMEOUT_S * 2)
        for task in self._senders:
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _send_all(
        self, target: WebhookNotification, queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        while (payload := await queue.get()) is not None:
            await self._send(target, payload)

    async def _send(self, target: WebhookNotification, payload: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        shown = redacted_url(target.url)
        try:
            async with self._session.request(
                target.http_method,
                target.url,
                json=payload,
                headers=request_headers(target),
                ssl=not target.disable_ssl_verification,
            ) as response:
                if response.status >= 400:
                    log.warning("notification to %s answered %s", shown, response.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # Only the class name: aiohttp's messages quote the full URL.
            log.warning("notification to %s failed: %s", shown, exc.__class__.__name__)
