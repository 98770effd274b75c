"""Watch streaming: initial state or change-log replay, then live changes, one JSON per line.

Subscribing, snapshotting and replaying happen without an await in between, so no change can
fall between the initial part and the live feed (the store publishes synchronously).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cloudkit.local.apiserver.errors import resource_version_too_large, status_body
from cloudkit.local.apiserver.resources import ResourceInfo
from cloudkit.local.apiserver.store import Change, Store, Subscription

Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]
LineCache = collections.OrderedDict[tuple[int, str, str], bytes]


@dataclass
class WatchRequest:
    info: ResourceInfo
    namespace: str | None  # None: every namespace
    matcher: Matcher
    resource_version: str | None
    bookmarks: bool
    send_initial_events: bool
    timeout_s: float
    bookmark_interval_s: float
    render: Callable[[Obj], Obj]  # object as served (version, Table ...)
    # Plain JSON renders depend only on the change and the served version, so the encoded
    # line is shared by every watcher of that version (100 watchers encode once). One cache
    # per server (RVs of different servers collide); None for Table watches.
    line_cache: LineCache | None = None


LINE_CACHE_LIMIT = 4096
# Bytes written to a live watcher and not yet taken by its client: past this the watcher is
# dropped (its client re-watches), so a reader that stops reading costs bounded memory.
UNSENT_LIMIT_BYTES = 8 * 1024 * 1024


def _chunk(line: bytes) -> bytes:
    """One HTTP/1.1 chunk: live events go straight to the connection (see _follow)."""
    return b"%x\r\n%s\r\n" % (len(line), line)


def _change_chunk(req: WatchRequest, change: Change, kind: str, obj: Obj) -> bytes:
    cache = req.line_cache
    if cache is None:
        return _chunk(_line(kind, req.render(obj)))
    key = (change.rv, kind, req.info.api_version)
    chunk = cache.get(key)
    if chunk is None:
        if obj is change.obj and change.body is not None:
            chunk = _chunk(_plain_line(req, kind, obj, change.body))
        else:
            chunk = _chunk(_line(kind, req.render(obj)))
        cache[key] = chunk
        if len(cache) > LINE_CACHE_LIMIT:
            cache.popitem(last=False)
    return chunk


def _line(kind: str, obj: Obj) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _plain_line(req: WatchRequest, kind: str, obj: Obj, text: str | None) -> bytes:
    """The line of a plain (not Table) watch: `text`, the store's encoding of `obj`, spliced
    into the event when `obj` is served as stored, the same bytes `_line` would write."""
    if text is None or obj.get("apiVersion") != req.info.api_version:
        return _line(kind, req.render(obj))
    return b'{"type":"%s","object":%s}\n' % (kind.encode(), text.encode())


def _bookmark(info: ResourceInfo, rv: int, initial_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}


def _in_scope(req: WatchRequest, obj: Obj | None) -> bool:
    if obj is None:
        return False
    if req.namespace is not None and obj["metadata"].get("namespace") != req.namespace:
        return False
    return req.matcher(obj)


def event_for(req: WatchRequest, change: Change) -> tuple[str, Obj] | None:
    """The event a watcher sees for `change`, with selector transitions applied."""
    now_in = change.type != "DELETED" and _in_scope(req, change.obj)
    if change.type == "DELETED":
        return ("DELETED", change.obj) if _in_scope(req, change.obj) else None
    if change.prev is None:
        # A replayed change (no previous state known) or a creation.
        if not now_in:
            return None
        return (change.type, change.obj)
    was_in = _in_scope(req, change.prev)
    if now_in and was_in:
        return ("MODIFIED", change.obj)
    if now_in:
        return ("ADDED", change.obj)
    if was_in:
        return ("DELETED", change.obj)
    return None


def parse_rv(text: str | None) -> int | None:
    """A resourceVersion as a number, or None when it is not one (ASCII digits that fit a
    uint64, as kube-apiserver parses them; never a Unicode digit or a 5000-digit string)."""
    if not text or len(text) > 20 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


async def stream(request: web.Request, store: Store, req: WatchRequest) -> web.StreamResponse:
    sub = store.subscribe(req.info.rkey)
    initial: list[bytes] = []
    rv_text = req.resource_version
    refusal: Obj | None = None
    plain = req.line_cache is not None  # not a Table watch: lines may embed stored texts
    requested = parse_rv(rv_text)
    if requested is not None and requested > store.rv:
        # kube-apiserver answers a watch-list from the future with this after waiting 3 s
        # for its cache, and a plain watch by waiting silently. Our store is the source of
        # truth and cannot be behind, so a future RV can only come from an earlier state
        # (a reset state directory): say so at once, and the client re-lists.
        refusal = resource_version_too_large(requested, store.rv).status()
        last_rv = store.rv
    elif req.send_initial_events or not rv_text or rv_text == "0":
        last_rv = store.rv
        for obj in store.list_objects(req.info.rkey, req.namespace):
            if req.matcher(obj):
                text = store.encoded(req.info.rkey, obj) if plain else None
                initial.append(_plain_line(req, "ADDED", obj, text))
        if req.send_initial_events:
            initial.append(_line("BOOKMARK", _bookmark(req.info, last_rv, initial_end=True)))
    else:
        since = -1 if requested is None else requested
        replay = store.changes_since(req.info.rkey, since) if since >= 0 else None
        last_rv = store.rv
        if replay is None:
            refusal = status_body(
                410, f"too old resource version: {since} ({store.compacted_rv + 1})", "Expired"
            )
        else:
            for change in replay:
                event = event_for(req, change)
                if event is not None:
                    text = change.body if event[1] is change.obj and plain else None
                    initial.append(_plain_line(req, event[0], event[1], text))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if refusal is not None:
            await response.write(_line("ERROR", refusal))
            return response
        if initial:
            await response.write(b"".join(initial))
        await _follow(request, store, sub, req, last_rv)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(sub)
    return response


async def _follow(
    request: web.Request, store: Store, sub: Subscription, req: WatchRequest, after_rv: int
) -> None:
    """The live part: each committed change is written to the connection in the writer's
    call stack (headers and the initial part went out through aiohttp before), so a write
    with 100 watchers costs 100 socket writes and no task wake-ups; this task only wakes for
    bookmarks, the timeout and the end of the subscription."""
    transport = request.transport
    loop = asyncio.get_running_loop()

    def send(data: bytes) -> None:
        if transport is None or transport.is_closing():
            sub.close()
            return
        transport.write(data)
        if transport.get_write_buffer_size() > UNSENT_LIMIT_BYTES:
            # A slow reader is dropped instead of buffering without bound.
            sub.overflowed = True
            sub.close()

    def deliver(change: Change) -> None:
        if change.rv > after_rv:
            event = event_for(req, change)
            if event is not None:
                send(_change_chunk(req, change, event[0], event[1]))

    sub.deliver = deliver
    deadline = loop.time() + req.timeout_s
    next_bookmark = loop.time() + req.bookmark_interval_s
    while not sub.closed:
        # First the changes queued while the initial part was being written, in order
        # (later ones are delivered directly, as the queue is then empty).
        for change in sub.take():
            deliver(change)
        now = loop.time()
        if now >= deadline:
            return
        await sub.wait(min(deadline, next_bookmark) if req.bookmarks else deadline)
        if req.bookmarks and not sub.closed and loop.time() >= next_bookmark:
            send(_chunk(_line("BOOKMARK", _bookmark(req.info, store.rv))))
            next_bookmark = loop.time() + req.bookmark_interval_s
