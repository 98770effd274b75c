"""The event streams: newline-delimited JSON, one `{id, type, <kind>: object}` per change.

Delivery is at most once and order is commit order as the store publishes it: a client that
reconnects has missed whatever happened meanwhile, and re-lists (as upstream's clients do).
Tenancy is the caller's scope applied to each event; the filter is CEL over the object as
`this` (and the event as `event`). A quiet private stream sends an empty line every
`HEARTBEAT_S`: its reader (the controller) tells a connection that died without a word (a black
hole, a dropped NAT entry) from a quiet one by it, within seconds instead of never. The public
stream stays pure NDJSON for tenants' tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from cloudkit.fulfillment.caller import Caller
from cloudkit.fulfillment.filters import Filter, FilterError, parse_filter
from cloudkit.fulfillment.models import Event, EventType, PrivateEvent, public_view
from cloudkit.fulfillment.routes.access import AdminDep, CallerDep, StoreDep
from cloudkit.fulfillment.routes.resources import ERRORS
from cloudkit.fulfillment.store.base import Event as StoredEvent
from cloudkit.fulfillment.store.base import Kind, Object, Store

log = logging.getLogger(__name__)

PUBLIC_PATH = "/api/events/v1/events"
PRIVATE_PATH = "/api/private/v1/events/watch"
MEDIA_TYPE = "application/x-ndjson"
# The payload's key in an event, by kind (upstream's oneof field names).
PAYLOAD: dict[Kind, str] = {"compute_instances": "compute_instance", "hubs": "hub"}
HEARTBEAT_S = 5.0
HEARTBEAT = "\n"


def _line(
    event: StoredEvent, view: Callable[[Object], Object], selected: Filter | None
) -> str | None:
    obj = view(event.object)
    wire: dict[str, Any] = {"id": str(event.seq), "type": EventType.wire(event.type).value}
    try:
        if selected is not None and not selected.matches(obj, event=wire):
            return None
    except FilterError as exc:
        log.info("event %s not sent: %s", event.seq, exc)
        return None
    wire[PAYLOAD[event.kind]] = obj
    return json.dumps(wire, separators=(",", ":")) + "\n"


async def _stream(
    events: AsyncIterator[StoredEvent],
    caller: Caller,
    *,
    private: bool,
    selected: Filter | None,
) -> AsyncIterator[str]:
    scope = caller.scope()
    view = (lambda obj: obj) if private else public_view
    try:
        async for event in events:
            if not scope.allows(event.tenant):
                continue
            if not private and (event.kind != "compute_instances" or event.type == "SIGNALED"):
                continue
            line = _line(event, view, selected)
            if line is not None:
                yield line
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def _with_heartbeats(lines: AsyncIterator[str], every_s: float) -> AsyncIterator[str]:
    """`lines`, and HEARTBEAT whenever none came for `every_s`. The pending read survives a
    heartbeat (cancelling it would end the stream it reads from)."""
    pending: asyncio.Future[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(lines))
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield HEARTBEAT
                continue
            read, pending = pending, None
            try:
                line = read.result()
            except StopAsyncIteration:
                return
            yield line
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        close = getattr(lines, "aclose", None)
        if close is not None:
            await close()


def _response(store: Store, caller: Caller, private: bool, text: str | None) -> StreamingResponse:
    # A broken filter is a 400 before the stream starts; a stream has no end, so no time limit
    # (each event's run still has the cost limit).
    selected = parse_filter(text, time_limit_s=None)
    events = store.events()  # subscribed now: what commits after the headers is delivered
    lines = _stream(events, caller, private=private, selected=selected)
    if private:
        lines = _with_heartbeats(lines, HEARTBEAT_S)
    return StreamingResponse(lines, media_type=MEDIA_TYPE)


def events_router() -> APIRouter:
    api = APIRouter(responses=ERRORS, tags=["events"])
    description = (
        "Newline-delimited JSON, one event per line, until the client closes. Delivery is at "
        "most once: after a break, re-list."
    )
    private_description = (
        f"{description} An empty line every {HEARTBEAT_S:.0f} s without events: a reader "
        "that hears nothing for longer may take the connection for dead."
    )

    @api.get(
        PUBLIC_PATH,
        operation_id="public_events_watch",
        response_model=Event,
        description=description,
    )
    async def public_events(
        caller: CallerDep,
        store: StoreDep,
        filter: str | None = Query(None, description="CEL over the object as `this`."),
    ) -> StreamingResponse:
        return _response(store, caller, False, filter)

    @api.get(
        PRIVATE_PATH,
        operation_id="private_events_watch",
        response_model=PrivateEvent,
        description=private_description,
    )
    async def private_events(
        caller: AdminDep,
        store: StoreDep,
        filter: str | None = Query(None, description="CEL over the object as `this`."),
    ) -> StreamingResponse:
        return _response(store, caller, True, filter)

    return api
