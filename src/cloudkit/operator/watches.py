"""The operator's watches of ComputeInstances, VirtualMachines and VirtualMachineInstances.

Each kind is followed cluster-wide with `cloudkit.watching` (list, watch from the list's
version, resume after the server ends a watch, back off after a failure, list again on 410),
and every object is handed to the shell's handler for its kind: `(None, object)` for a listed
one (as kopf delivered a listing), `("ADDED" | "MODIFIED" | "DELETED", object)` for a change.
An object the handler was told of that a re-list (after a 410) no longer holds is delivered as
DELETED at the list's version (client-go's Replace), and `synced(kind)` follows every list.

Why not kopf's watches (they fed the handlers until issue 22): kopf runs every watch event
through its per-object machinery (a worker task per object, body and patch views, its memories,
handler invocation with a dozen keyword arguments), about a quarter of the operator's CPU at
N = 1,000 for handlers that only store the object and enqueue a key (docs/decisions.md, "The
operator's own watches"). Here an event costs one JSON parse (kubernetes_asyncio's `Watch`
parses each line, serialises the object again and parses it once more) and the handler.

A kind whose CRD is not installed (KubeVirt absent) answers 404: the follow backs off (up to
`cloudkit.watching`'s 5 s ceiling) and lists as soon as the CRD exists. A handler that raises
loses its event (logged), never the watch: the next change of the object, or the next list,
brings it again, and every write the reconciler makes is fenced by a resourceVersion anyway.

The watches use a client of their own, so the requests metric counts the reconciler's reads and
writes only, as it did when kopf watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.operator.kube_objects import ObjectKey, object_key
from cloudkit.watching import Cursor, Follower, follow

log = logging.getLogger("cloudkit.operator")

WATCH_SERVER_TIMEOUT_S = 30
"""The server ends each watch after this (the follow resumes from the last version seen)."""
WATCH_CLIENT_MARGIN_S = 5.0
"""A watch that went quiet for the server's timeout and this margin is dropped: a connection
into a black hole would otherwise wait for events for good."""
CONNECT_TIMEOUT_S = 10.0
LIST_TIMEOUT_S = 60.0
"""A list of every object of a kind (a thousand instances on two loaded cores)."""
Obj = dict[str, Any]
Handler = Callable[[str | None, Obj], None]
"""Told of every object: (None, listed object) or (event type, object)."""
Event = tuple[str, Obj]


@dataclass(frozen=True)
class Kind:
    """A cluster-wide collection the operator follows."""

    what: str
    group: str
    version: str
    plural: str


INSTANCES = Kind("ComputeInstances", names.GROUP, names.VERSION, names.PLURAL)
VIRTUAL_MACHINES = Kind(
    "VirtualMachines", names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL
)
VIRTUAL_MACHINE_INSTANCES = Kind(
    "VirtualMachineInstances", names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL
)


class WatchError(Exception):
    """A refused list or watch of `kind`, or an ERROR event in its stream: `status` is its
    code (410: the version expired; 404: the kind's CRD is not installed). The message is one
    short line, never the answer's headers (kubernetes_asyncio's ApiException prints them)."""

    def __init__(self, kind: Kind, status: int | None, reason: str) -> None:
        self.status = status
        hint = " (is its CRD installed?)" if status == 404 else ""
        super().__init__(f"{status} {reason}{hint}".strip())

    @classmethod
    def of_event(cls, kind: Kind, status: Obj) -> WatchError:
        code = status.get("code")
        reason = str(status.get("message") or status.get("reason") or "")
        return cls(kind, code if isinstance(code, int) else None, reason)


TRANSIENT = (WatchError, aiohttp.ClientError, OSError, TimeoutError, ValueError)
"""Failures a watch rides out: refusals (a missing CRD's 404 included) and ERROR events but a
410 (which lists again at once), broken connections, timeouts, a line that is not JSON."""


@dataclass
class Watches:
    """The follows of the three kinds over one ApiClient (closed by `close`)."""

    api: client.ApiClient
    _alive: dict[Kind, dict[ObjectKey, Obj]] = field(default_factory=dict)
    """Per kind, the metadata of the objects its handler was last told exist: what a re-list
    may find gone (kept across follows of the kind, as a resumed follow needs it)."""

    def __post_init__(self) -> None:
        self._custom = client.CustomObjectsApi(self.api)

    async def close(self) -> None:
        await self.api.close()

    def start(
        self, handlers: dict[Kind, Handler], synced: Callable[[Kind], None] | None = None
    ) -> list[asyncio.Task[None]]:
        """A task following each kind, handing its objects to its handler, and telling
        `synced(kind)` after each of its lists (until canceled)."""
        return [
            asyncio.create_task(
                self.follow(kind, handler, synced=synced), name=f"watch-{kind.plural}"
            )
            for kind, handler in handlers.items()
        ]

    async def follow(
        self,
        kind: Kind,
        handler: Handler,
        cursor: Cursor | None = None,
        *,
        synced: Callable[[Kind], None] | None = None,
    ) -> None:
        """Follow `kind` until canceled; `cursor` (default: a fresh one, which lists first)
        says where to start."""
        alive = self._alive.setdefault(kind, {})

        def deliver(event_type: str | None, obj: Obj) -> None:
            if event_type == "DELETED":
                alive.pop(object_key(obj), None)
            else:
                alive[object_key(obj)] = {"metadata": obj.get("metadata") or {}}  # shared
            _deliver(kind, handler, event_type, obj)

        async def relist() -> str | None:
            listed, version = await self._list(kind)
            gone = alive.keys() - {object_key(item) for item in listed}
            for key in sorted(gone):
                # Deleted while the watch was away (a 410): no DELETED event will ever come.
                # As client-go's Replace, the deletion is delivered at the list's version.
                # The last object known, at the list's version: its labels route the change.
                deliver("DELETED", _at_version(alive[key], version))
            for item in listed:
                deliver(None, item)
            return version

        async def on_event(event: Event) -> None:
            event_type, obj = event
            if event_type != "BOOKMARK":
                deliver(event_type, obj)

        follower = Follower(
            relist=relist,
            watch=lambda version: self._stream(kind, version),
            on_event=on_event,
            version_of=lambda event: _version(event[1]),
        )
        told = None if synced is None else functools.partial(synced, kind)
        await follow(follower, cursor or Cursor(kind.what, transient=TRANSIENT), synced=told)

    async def _list(self, kind: Kind) -> tuple[list[Obj], str | None]:
        """Every object of `kind`, and the list's resourceVersion."""
        try:
            listed = await self._custom.list_cluster_custom_object(
                kind.group, kind.version, kind.plural, _request_timeout=LIST_TIMEOUT_S
            )
        except ApiException as error:
            raise WatchError(kind, error.status, str(error.reason or "")) from None
        items = [item for item in listed.get("items") or [] if isinstance(item, dict)]
        return items, _version(listed)

    @contextlib.asynccontextmanager
    async def _stream(self, kind: Kind, version: str | None) -> AsyncIterator[AsyncIterator[Event]]:
        timeout = aiohttp.ClientTimeout(
            total=WATCH_SERVER_TIMEOUT_S + WATCH_CLIENT_MARGIN_S, sock_connect=CONNECT_TIMEOUT_S
        )
        response = cast(
            aiohttp.ClientResponse,
            await self._custom.list_cluster_custom_object(
                kind.group,
                kind.version,
                kind.plural,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=version or "",  # "": from now, as the server reads it
                timeout_seconds=WATCH_SERVER_TIMEOUT_S,
                _preload_content=False,
                _request_timeout=timeout,
            ),
        )
        try:
            if not 200 <= response.status <= 299:
                raise WatchError(kind, response.status, str(response.reason or ""))
            yield _events(kind, response)
        finally:
            response.release()


async def _events(kind: Kind, response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """The stream's events, one JSON document a line; an ERROR event raises WatchError."""
    while line := await response.content.readline():
        if not line.strip():
            continue
        event = json.loads(line)
        event_type, obj = event.get("type"), event.get("object")
        if not isinstance(event_type, str) or not isinstance(obj, dict):
            raise ValueError(f"watch of {kind.what}: an event without a type or an object")
        if event_type == "ERROR":
            raise WatchError.of_event(kind, obj)
        yield event_type, obj


def _deliver(kind: Kind, handler: Handler, event_type: str | None, obj: Obj) -> None:
    try:
        handler(event_type, obj)
    except Exception:
        metadata = obj.get("metadata") or {}
        log.exception(
            "handling a %s event of %s %s/%s failed",
            event_type or "listed",
            kind.what,
            metadata.get("namespace"),
            metadata.get("name"),
        )


def _at_version(obj: Obj, version: str | None) -> Obj:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    if version is not None:
        metadata["resourceVersion"] = version
    return {**obj, "metadata": metadata}


def _version(obj: Obj) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return version if isinstance(version, str) and version else None
