"""The HTTP request/response model of the AAP client and the status → typed error mapping.

Pure data and functions: the transport fills a `Response`, everything else reads it. Kept apart
from wire.py (the endpoints) so each stays small.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from cloudkit.providers.base import (
    ProviderError,
    ProviderInvalidResponse,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnauthorized,
    ProviderUnavailable,
)

DEFAULT_RETRY_AFTER = 10.0
"""Seconds to wait on a 429 without a readable Retry-After header."""

MAX_BODY_IN_MESSAGE = 300
"""Raw bodies are kept in error messages (400 bodies are field maps), but bounded."""


@dataclass(frozen=True, slots=True)
class Request:
    """What to send: `path` is relative to the configured API root (no version, no slash)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] | None = None

    def url(self, base: str) -> str:
        """The absolute URL under `base` (e.g. http://host/api or https://host/api/controller)."""
        url = f"{base.rstrip('/')}/{self.path}"
        if self.query:
            url += "?" + urlencode(self.query)
        return url

    def describe(self) -> str:
        """Short human form for error messages (no query: it may carry names, never secrets)."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Response:
    """What came back, as plain data. Header names are lower-cased by the transport."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


# --- errors -------------------------------------------------------------------------------------


def redact(text: str, secret: str) -> str:
    """Remove a secret from a message; used on every message that leaves the client."""
    if secret:
        text = text.replace(secret, "<redacted>")
    return text


def body_excerpt(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if len(text) > MAX_BODY_IN_MESSAGE:
        text = text[:MAX_BODY_IN_MESSAGE] + "…"
    return text


def parse_retry_after(value: str | None, *, now: datetime) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def error_for(request: Request, response: Response, *, now: datetime) -> ProviderError | None:
    """The typed error for a non-success status, or None for 2xx.

    The raw body is kept (AWX 400 bodies are field maps that say what was wrong); the caller
    redacts the token from the message before raising, in case a proxy echoes headers.
    """
    status = response.status
    if 200 <= status < 300:
        return None
    what = f"{request.describe()} answered {status}"
    excerpt = body_excerpt(response.body)
    message = f"{what}: {excerpt}" if excerpt else what
    if status == 401:
        return ProviderUnauthorized(f"{message} (check the AAP token)", status=status)
    if status == 404:
        return ProviderNotFound(message, status=status)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
        return ProviderRateLimited(message, retry_after=retry_after, status=status)
    if status >= 500:
        return ProviderUnavailable(message, status=status)
    if 300 <= status < 400:
        # Redirects are not followed: a redirected POST loses its body. The usual cause is a
        # base URL or path without the trailing slash AWX insists on.
        location = response.headers.get("location", "?")
        return ProviderInvalidResponse(
            f"{what}: unexpected redirect to {location} (check the base URL)", status=status
        )
    # 400 (bad extra_vars, missing resources), 403, 405 and the rest: the backend refused.
    return ProviderNotAllowed(message, status=status)


def json_body(request: Request, response: Response) -> Any:
    try:
        return json.loads(response.body)
    except (UnicodeDecodeError, ValueError):
        raise ProviderInvalidResponse(
            f"{request.describe()} answered {response.status} with a body that is not JSON: "
            f"{body_excerpt(response.body)}",
            status=response.status,
        ) from None


def json_object(request: Request, response: Response) -> dict[str, Any]:
    body = json_body(request, response)
    if not isinstance(body, dict):
        raise ProviderInvalidResponse(
            f"{request.describe()} answered a JSON {type(body).__name__}, expected an object",
            status=response.status,
        )
    return body


def invalid(request: Request, response: Response, problem: str) -> ProviderInvalidResponse:
    return ProviderInvalidResponse(
        f"{request.describe()} answered {response.status}: {problem}", status=response.status
    )


def int_field(request: Request, response: Response, obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    # bool is an int subclass; a true "id" is a malformed body, not job 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(request, response, f"field {key!r} is missing or not an integer")
    return value
