"""The hubs' ComputeInstances, watched: every change of one labelled with a record's id wakes
that record at once.

A deleted record waits for its resource to be gone (the operator deprovisions first) and a
record whose resource was deleted behind its back waits to create it anew: both used to look
again every second; with the watch they are woken by the resource's own events, and the
decision's `RECHECK_S` is only a safety net for a watch that missed one (it lists again after a
break, waking every record it finds, so a change in between is not lost either).

One watch per (kubeconfig, namespace), started the first time a record is reconciled on that
hub, through `cloudkit.watching` (list, watch from the list's version, resume, back off, list
again on 410) and kubernetes_asyncio on the hub's own client. The watch only wakes: every
decision still reads the resource from the hub (`HubClient.find_resource`). Only a change the
controller decides on wakes a record: a resource added or gone, its deletion started, its spec
changed (`metadata.generation`: the controller merge-patches drift back); the operator's status
writes, most of a resource's events, wake nobody (each would cost the hub a list for nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.watching import Cursor, Follower, follow

log = logging.getLogger("cloudkit.fulfillment.controller")

Object = dict[str, Any]
WATCH_S = 240
"""The server ends each watch after this long (it is resumed at once from its last version)."""
WATCH_DEADLINE_S = WATCH_S + 30
"""The client's own deadline on one watch: a connection that died silently ends here."""
TRANSIENT = (ApiException, aiohttp.ClientError, OSError, TimeoutError)

Wake = Callable[[str], None]
"""Told the record id of every resource that changed."""


class ResourceWatches:
    """The watches of the hubs this controller acts on, each waking records through `wake`."""

    def __init__(self, wake: Wake) -> None:
        self._wake = wake
        self._tasks: dict[tuple[Path, str], asyncio.Task[None]] = {}

    def ensure(self, kubeconfig: Path, namespace: str, api_client: client.ApiClient) -> None:
        """Watch `namespace` through `api_client` unless it is watched already."""
        key = (kubeconfig, namespace)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            return
        self._tasks[key] = asyncio.create_task(
            _logged(_watch(api_client, namespace, self._wake), namespace),
            name=f"watch ComputeInstances {namespace}",
        )

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


async def _logged(watching: Coroutine[Any, Any, None], namespace: str) -> None:
    """A watch that ended on a failure it does not ride out says so (the next reconcile on
    that hub starts it again; meanwhile RECHECK_S is the records' only wake-up)."""
    try:
        await watching
    except Exception:
        log.exception("watch of ComputeInstances in %s ended", namespace)


async def _watch(api_client: client.ApiClient, namespace: str, wake: Wake) -> None:
    custom = client.CustomObjectsApi(api_client)
    selector = names.INSTANCE_UUID_LABEL  # only the controller's resources: they carry it

    seen: dict[str, tuple[object, object]] = {}
    """uid → (generation, deletionTimestamp) of the resources as last seen."""

    def wake_on_change(kind: str, obj: Object) -> None:
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        mark = (metadata.get("generation"), metadata.get("deletionTimestamp"))
        if kind == "DELETED":
            seen.pop(uid, None)
        elif seen.get(uid) == mark:
            return  # a status write: nothing the controller decides on
        else:
            seen[uid] = mark
        _wake_owner(obj, wake)

    async def relist() -> str | None:
        listed = await custom.list_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            namespace,
            names.PLURAL,
            label_selector=selector,
            _request_timeout=WATCH_DEADLINE_S,
        )
        # A change may have been missed while the watch was down: every record looks again.
        seen.clear()
        for item in listed.get("items") or []:
            wake_on_change("ADDED", item)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "") or None

    @contextlib.asynccontextmanager
    async def open_watch(version: str | None) -> AsyncIterator[AsyncIterator[Object]]:
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            names.GROUP,
            names.VERSION,
            namespace,
            names.PLURAL,
            label_selector=selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_S,
            _request_timeout=WATCH_DEADLINE_S,
        )
        try:
            yield stream
        finally:
            await stream.close()

    async def on_event(event: Object) -> None:
        kind = str(event.get("type") or "")
        if kind != "BOOKMARK":
            wake_on_change(kind, event.get("raw_object") or {})

    follower = Follower(
        relist=relist,
        watch=open_watch,
        on_event=on_event,
        version_of=_version_of,
    )
    await follow(follower, Cursor(f"ComputeInstances in {namespace}", transient=TRANSIENT))


def _wake_owner(obj: Object, wake: Wake) -> None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    record_id = labels.get(names.INSTANCE_UUID_LABEL)
    if isinstance(record_id, str) and record_id:
        wake(record_id)


def _version_of(event: Object) -> str | None:
    raw = event.get("raw_object") or {}
    return str((raw.get("metadata") or {}).get("resourceVersion") or "") or None
