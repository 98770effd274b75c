"""The AAP/AWX controller transport: one aiohttp session, retries, typed errors, template cache.

What to send and how to read the answer is in wire.py; this module only moves bytes, decides
what may be retried, and keeps the name → template cache. Launches are never retried: a launch
is not idempotent in AWX (every POST creates a job), so after a failed launch the lifecycle core
looks the job up by correlation id instead.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from cloudkit.api.backoff import backoff_delay
from cloudkit.api.jobs import JobReading
from cloudkit.providers.aap import wire
from cloudkit.providers.base import (
    CancelAnswer,
    ProviderError,
    ProviderNotFound,
    ProviderUnavailable,
)

__all__ = ["AapClient", "backoff_delay"]

DEFAULT_TIMEOUT = 10.0
"""One request's deadline. A connection the network dropped without a word (a NAT entry gone;
the stack's fault relays play it) holds a request until then, and a poll of each attempt that
meets one: 30 s stalled a deletion's deprovision poll for 90 s. A launch that takes longer on a
busy controller is not lost either: the next pass finds it by its correlation id."""
FIND_MAX_PAGES = 5
"""find_job reads at most this many pages of 200: more launches than that within the skew window
of one intent means something else is wrong."""


class AapClient:
    """Talks to one controller API root, e.g. http://host/api or https://host/api/controller."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = 3,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base = url.rstrip("/")
        self._token = token
        self._ca_bundle = ca_bundle
        self._verify_tls = verify_tls
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max(1, attempts)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._rand = rand
        self._session: aiohttp.ClientSession | None = None
        self._templates: dict[str, wire.TemplateRef] = {}

    # --- transport ------------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self._verify_tls:
            return False
        if self._ca_bundle:
            return ssl.create_default_context(cafile=self._ca_bundle)
        return True

    def _session_for_loop(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/json",
                },
            )
        return self._session

    def _redacted(self, error: ProviderError) -> ProviderError:
        error.message = wire.redact(error.message, self._token)
        error.args = (error.message,)
        return error

    async def _send_once(self, request: wire.Request) -> wire.Response:
        session = self._session_for_loop()
        try:
            async with session.request(
                request.method,
                request.url(self._base),
                json=dict(request.body) if request.body is not None else None,
                allow_redirects=False,
            ) as http:
                body = await http.read()
                headers = {key.lower(): value for key, value in http.headers.items()}
                return wire.Response(http.status, body, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise self._redacted(
                ProviderUnavailable(f"{request.describe()} failed: {detail}")
            ) from None

    async def send(
        self, request: wire.Request, *, retry: bool, accept: frozenset[int] = frozenset()
    ) -> wire.Response:
        """Send and return a 2xx (or `accept`ed) response, or raise the typed error.

        Error messages never contain the token. With `retry`, unavailability (connection
        errors, timeouts, 5xx) is retried with jittered exponential backoff; other errors are
        facts and are raised at once.
        """
        attempts = self._attempts if retry else 1
        for attempt in range(attempts):
            try:
                response = await self._send_once(request)
                error = wire.error_for(request, response, now=datetime.now(UTC))
                if error is None or response.status in accept:
                    return response
                raise self._redacted(error)
            except ProviderUnavailable:
                if attempt + 1 >= attempts:
                    raise
            await self._sleep(
                backoff_delay(
                    attempt, base=self._backoff_base, cap=self._backoff_cap, rand=self._rand()
                )
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- operations -----------------------------------------------------------------------------

    async def template(self, name: str) -> wire.TemplateRef:
        """Resolve a template name: job templates first, then workflow templates; cached."""
        cached = self._templates.get(name)
        if cached is not None:
            return cached
        for kind in (wire.TemplateKind.JOB, wire.TemplateKind.WORKFLOW):
            request = wire.template_lookup_request(kind, name)
            response = await self.send(request, retry=True)
            found = wire.parse_template_lookup(request, response, kind, name)
            if found is not None:
                self._templates[name] = found
                return found
        raise ProviderNotFound(f"no job template or workflow job template named {name!r}")

    async def launch(self, template_name: str, extra_vars: Mapping[str, Any]) -> wire.AapJobId:
        """Launch once (never retried); a 404 forgets the cached id (template recreated?)."""
        template = await self.template(template_name)
        request = wire.launch_request(template, extra_vars)
        try:
            response = await self.send(request, retry=False)
            return wire.parse_launch(request, response)
        except ProviderError as error:
            if isinstance(error, ProviderNotFound):
                self._templates.pop(template_name, None)
            # The status and events of the instance must name what was refused, not only the
            # numeric URL (a renamed or re-created template is the usual cause).
            kind = template.kind.value.replace("_", " ")
            error.message = f"launching {kind} {template_name!r}: {error.message}"
            raise

    async def job(self, job_id: wire.AapJobId) -> JobReading:
        """Read a job; a 404 raises ProviderNotFound (the provider turns it into 'purged')."""
        request = wire.job_request(job_id)
        response = await self.send(request, retry=True)
        return wire.parse_job(request, response, job_id)

    async def cancel(self, job_id: wire.AapJobId) -> CancelAnswer:
        request = wire.cancel_request(job_id)
        # 405 on cancel is an answer (the job already ended), not a failure.
        response = await self.send(request, retry=True, accept=frozenset({405}))
        outcome = wire.cancel_answer(response)
        if outcome is None:  # pragma: no cover - send() raised for every other status
            raise AssertionError(f"unexpected cancel status {response.status}")
        return outcome

    async def find(
        self, template_name: str, correlation_id: str, since: datetime
    ) -> JobReading | None:
        """The job launched from this template with this correlation id since `since`."""
        template = await self.template(template_name)
        for page in range(1, FIND_MAX_PAGES + 1):
            request = wire.find_jobs_request(template, since, page=page)
            response = await self.send(request, retry=True)
            found = wire.parse_find(request, response, template, correlation_id)
            if found.match is not None or not found.has_next:
                return found.match
        return None
