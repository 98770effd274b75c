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
from cloudkit.local.apiserver.store import Change, Store

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


def _change_line(req: WatchRequest, rv: int, kind: str, obj: Obj) -> bytes:
    cache = req.line_cache
    if cache is None:
        return _line(kind, req.render(obj))
    key = (rv, kind, req.info.api_version)
    line = cache.get(key)
    if line is None:
        line = _line(kind, req.render(obj))
        cache[key] = line
        if len(cache) > LINE_CACHE_LIMIT:
            cache.popitem(last=False)
    return line


def _line(kind: str, obj: Obj) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


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
                initial.append(_line("ADDED", req.render(obj)))
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
                    initial.append(_line(event[0], req.render(event[1])))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if refusal is not None:
            await response.write(_line("ERROR", refusal))
            return response
        if initial:
            await response.write(b"".join(initial))
        await _follow(response, store, sub, req, last_rv)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(sub)
    return response


async def _follow(
    response: web.StreamResponse, store: Store, sub: Any, req: WatchRequest, after_rv: int
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout_s
    next_bookmark = loop.time() + req.bookmark_interval_s
    while True:
        now = loop.time()
        if now >= deadline:
            return
        until = min(deadline, next_bookmark) if req.bookmarks else deadline
        batch = await sub.next_batch(until)
        lines = []
        for change in batch:
            if change.rv <= after_rv:
                continue
            event = event_for(req, change)
            if event is not None:
                lines.append(_change_line(req, change.rv, event[0], event[1]))
        if lines:
            await response.write(b"".join(lines) if len(lines) > 1 else lines[0])
        if sub.closed:
            # Overflowed (too slow) or the server is stopping: the client re-lists/reconnects.
            return
        if req.bookmarks and loop.time() >= next_bookmark:
            if not sub.items:
                await response.write(_line("BOOKMARK", _bookmark(req.info, store.rv)))
            next_bookmark = loop.time() + req.bookmark_interval_s
