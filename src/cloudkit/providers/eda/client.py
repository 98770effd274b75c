"""The EDA webhook transport: one aiohttp POST with a 10 s timeout, 2xx = success.

Not retried here: a webhook is not idempotent (each POST fires the rulebook once), so a retry
is the lifecycle core's decision.
"""

from __future__ import annotations

import aiohttp

from cloudkit.providers.base import ProviderUnavailable
from cloudkit.providers.eda import wire

DEFAULT_TIMEOUT = 10.0


class WebhookClient:
    """Posts webhook requests over one lazily created session (it belongs to the event loop)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, request: wire.WebhookRequest) -> None:
        """POST; raise the typed error for a non-2xx answer or a transport failure."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                request.url, data=request.body, headers=dict(request.headers)
            ) as response:
                body = await response.read()
                error = wire.error_for_status(
                    request.url,
                    response.status,
                    body,
                    retry_after=response.headers.get("Retry-After"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ProviderUnavailable(
                f"EDA webhook {wire.safe_url(request.url)} failed: {detail}"
            ) from None
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
