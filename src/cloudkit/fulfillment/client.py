"""A small typed HTTP client of the fulfillment API (public or private side), for the CLI, the
service's controller, the operator's feedback and scenarios.

Objects travel as their wire form (plain dicts, as the store holds them). Every error answer
becomes one `ApiError` carrying the server's `{code, message, details}`; a 404 is `NotFound`, a
409 `Conflict`. The token is asked for before each request, so a token file re-read or a
script re-run on every call (upstream's habit) is just another `TokenSource`.

Every request has a deadline (`timeout_s`, the whole exchange). A request whose replay cannot
do harm (reads, updates, deletions, signals) is tried up to `attempts` times, with jittered
exponential back-off, when the connection fails, the deadline passes or the service answers
502/503/504; `retried` counts those retries (a report tells an unsteady network from a wrong
answer with it). A create is sent once: a lost answer may hide a record that was made, which
only the caller can look for.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from cloudkit.api.backoff import backoff_delay

log = logging.getLogger("cloudkit.fulfillment.client")

Object = dict[str, Any]
Kind = Literal["compute_instances", "hubs"]
TokenSource = Callable[[], str]

PUBLIC_PREFIX = "/api/fulfillment/v1"
PRIVATE_PREFIX = "/api/private/v1"
PUBLIC_EVENTS = "/api/events/v1/events"
PRIVATE_EVENTS = "/api/private/v1/events/watch"
TIMEOUT_S = 30.0
ATTEMPTS = 3
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.2, 2.0
STREAM_SILENCE_S = 15.0
"""Silence after which the private event stream (a heartbeat every 5 s) is taken for dead."""
UNAVAILABLE = frozenset({502, 503, 504})
"""Answers of a proxy or a service that is not there: worth another attempt."""


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


class ApiError(Exception):
    """An error answer: `status` (HTTP), the server's one-sentence `message`, the fields at
    fault. str() is the message, for people."""

    def __init__(self, status: int, message: str, details: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = tuple(details)


class NotFound(ApiError):
    """No such record for this caller (another tenant's answers the same)."""


class Conflict(ApiError):
    """`lock` was set and the record's `metadata.version` has moved on."""


@dataclass(frozen=True)
class Page:
    """One page of a list: `size` items of `total` matching."""

    size: int
    total: int
    items: list[Object] = field(default_factory=list)


def error_from_answer(status: int, body: Any) -> ApiError:
    """The ApiError of an answer whose body is (usually) the server's `models.Error`."""
    message, details = f"HTTP {status}", []
    if isinstance(body, dict):
        message = str(body.get("message") or message)
        for detail in body.get("details") or []:
            if isinstance(detail, dict):
                details.append(FieldError(str(detail.get("field")), str(detail.get("reason"))))
    kind = {404: NotFound, 409: Conflict}.get(status, ApiError)
    return kind(status, message, details)


class FulfillmentClient:
    """One API address, one caller. Use `async with`, or call `close()`."""

    def __init__(
        self,
        address: str,
        token: TokenSource,
        *,
        ca_file: Path | None = None,
        private: bool = False,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        stream_silence_s: float = STREAM_SILENCE_S,
    ) -> None:
        self.address = address.rstrip("/")
        self.stream_silence_s = stream_silence_s
        self.attempts = max(1, attempts)
        self.retried = 0
        """Requests sent again after a failed connection, a deadline or a 502/503/504."""
        self._token = token
        self._private = private
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FulfillmentClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- records -------------------------------------------------------------------------------

    async def list(
        self,
        kind: Kind = "compute_instances",
        *,
        filter: str | None = None,
        order: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Page:
        """One page; `filter` is CEL over the object as `this`, `order` `path [asc|desc],…`."""
        query: dict[str, str] = {"offset": str(offset)}
        for name, value in (("filter", filter), ("order", order), ("limit", limit)):
            if value is not None:
                query[name] = str(value)
        body = await self._call("GET", self._path(kind), replayable=True, params=query)
        return Page(int(body["size"]), int(body["total"]), list(body.get("items") or []))

    async def list_all(
        self, kind: Kind = "compute_instances", *, filter: str | None = None, page: int = 100
    ) -> builtins.list[Object]:
        """Every matching record, page by page (a record may move between pages meanwhile)."""
        items: builtins.list[Object] = []
        while True:
            found = await self.list(kind, filter=filter, offset=len(items), limit=page)
            items.extend(found.items)
            if not found.items or len(items) >= found.total:
                return items

    async def get(self, id: str, kind: Kind = "compute_instances") -> Object:
        return dict(await self._call("GET", self._path(kind, id), replayable=True))

    async def create(self, obj: Object, kind: Kind = "compute_instances") -> Object:
        """The created object, with its server-assigned `id`."""
        return dict(await self._call("POST", self._path(kind), replayable=False, json=obj))

    async def update(
        self,
        id: str,
        obj: Object,
        kind: Kind = "compute_instances",
        *,
        update_mask: Sequence[str] | None = None,
        lock: bool = False,
    ) -> Object:
        """PATCH: only the `update_mask` paths change, or (without one) the whole spec is
        replaced; `lock` refuses (Conflict) unless `obj.metadata.version` is current."""
        query: dict[str, str] = {}
        if update_mask is not None:
            query["update_mask"] = ",".join(update_mask)
        if lock:
            query["lock"] = "true"
        # A replay of an applied update is the same update (or, with `lock`, a Conflict that
        # sends the caller back to read): safe to retry.
        return dict(
            await self._call("PATCH", self._path(kind, id), replayable=True, json=obj, params=query)
        )

    async def delete(self, id: str, kind: Kind = "compute_instances") -> Object:
        """Soft delete: the record as it is now (with `deletion_timestamp`)."""
        return dict(await self._call("DELETE", self._path(kind, id), replayable=True))

    async def signal(self, id: str, kind: Kind = "compute_instances") -> None:
        """Publish SIGNALED for the record (private API only)."""
        await self._call("POST", self._path(kind, id) + "/signal", replayable=True)

    @contextlib.asynccontextmanager
    async def watch(self, *, filter: str | None = None) -> AsyncIterator[AsyncIterator[Object]]:
        """The event stream, open: once this is entered, every later commit is on it (so a
        caller that lists *after* entering misses nothing in between). It yields one `{id,
        type, <kind>: object}` at a time and ends when the connection does: delivery is at
        most once, so a caller re-lists then. A private stream silent for `stream_silence_s`
        (no event, no heartbeat) raises aiohttp.ServerTimeoutError."""
        path = PRIVATE_EVENTS if self._private else PUBLIC_EVENTS
        query = {"filter": filter} if filter is not None else {}
        # No overall deadline: a quiet stream is a healthy one. The private stream's heartbeat
        # lets its silence mean a dead connection (a black hole would hide events forever).
        silence = self.stream_silence_s if self._private else None
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout.total, sock_read=silence)
        async with self._open().get(
            self.address + path, params=query, headers=self._headers(), timeout=timeout
        ) as answer:
            if answer.status != 200:
                raise error_from_answer(answer.status, await _json_or_none(answer))
            yield _event_lines(answer)

    async def events(self, *, filter: str | None = None) -> AsyncIterator[Object]:
        """`watch` as a plain iterator."""
        async with self.watch(filter=filter) as stream:
            async for event in stream:
                yield event

    # -- transport -----------------------------------------------------------------------------

    def _path(self, kind: Kind, id: str | None = None) -> str:
        prefix = PRIVATE_PREFIX if self._private or kind == "hubs" else PUBLIC_PREFIX
        path = f"{self.address}{prefix}/{kind}"
        return path if id is None else f"{path}/{_segment(id)}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl), timeout=self._timeout
            )
        return self._session

    async def _call(self, method: str, url: str, *, replayable: bool, **kwargs: Any) -> Any:
        attempts = self.attempts if replayable else 1
        for attempt in range(attempts):
            try:
                return await self._call_once(method, url, **kwargs)
            except (aiohttp.ClientConnectionError, TimeoutError, ApiError) as error:
                unavailable = not isinstance(error, ApiError) or error.status in UNAVAILABLE
                if not unavailable or attempt + 1 >= attempts:
                    raise
                delay = backoff_delay(
                    attempt, base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S, rand=random.random()
                )
                log.warning(
                    "%s %s: %s; again in %.1fs",
                    method,
                    url.removeprefix(self.address),
                    str(error) or type(error).__name__,
                    delay,
                )
                self.retried += 1
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, method: str, url: str, **kwargs: Any) -> Any:
        async with self._open().request(method, url, headers=self._headers(), **kwargs) as answer:
            body = await _json_or_none(answer)
            if answer.status >= 400:
                raise error_from_answer(answer.status, body)
            return body if body is not None else {}


def _segment(id: str) -> str:
    """An id as one path segment, whatever a caller passed (no `/`, `..` or query smuggled)."""
    if id in ("", ".", ".."):
        raise NotFound(404, "not found")
    return quote(id, safe="")


async def _event_lines(answer: aiohttp.ClientResponse) -> AsyncIterator[Object]:
    with contextlib.suppress(aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
        async for line in answer.content:
            if line.strip():
                yield dict(json.loads(line))


async def _json_or_none(answer: aiohttp.ClientResponse) -> Any:
    text = await answer.text()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
