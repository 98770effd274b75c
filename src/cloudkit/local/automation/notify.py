"""Job status webhooks, like AWX notification templates of the webhook type.

Fire-and-forget from the executor's point of view, but ordered per URL: one sender task per
URL drains a queue, so a receiver sees pending → running → successful in that order. Each POST
has a short timeout and failures are only logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0


class Notifier:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._senders: list[asyncio.Task[None]] = []

    def notify(self, url: str, payload: dict[str, Any]) -> None:
        queue = self._queues.get(url)
        if queue is None:
            queue = self._queues[url] = asyncio.Queue()
            self._senders.append(asyncio.create_task(self._send_all(url, queue)))
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

    async def _send_all(self, url: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while (payload := await queue.get()) is not None:
            await self._send(url, payload)

    async def _send(self, url: str, payload: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        try:
            async with self._session.post(url, json=payload) as response:
                if response.status >= 400:
                    log.warning("notification to %s answered %s", url, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("notification to %s failed: %s", url, exc.__class__.__name__)
