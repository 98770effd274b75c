"""The one watch loop (cloudkit.watching) against the local API server, with the kubernetes
clients: a version compacted away (410) lists again and goes on from the list; a watch the
server ends resumes from the last version without a list.

The server keeps a change log of WINDOW changes only, so a few writes compact a version away as
thousands would on a busy cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch

from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.watching import BlockingFollower, Cursor, Follower, follow, follow_blocking
from tests.contract.conftest import serving
from tests.waiting import until, until_sync

pytestmark = pytest.mark.stack

WINDOW = 20
NAMESPACE = "default"
WATCH_S = 1
"""The server ends each watch after this long: the follow must resume, not list again."""


@pytest.fixture
def compacting_apiserver(tmp_path: Path) -> Iterator[ApiServerHandle]:
    with serving(tmp_path / "state", change_log_window=WINDOW) as handle:
        yield handle


def configmap(name: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"name": name})


def list_version(listed: client.V1ConfigMapList | aclient.V1ConfigMapList) -> str:
    assert listed.metadata is not None and listed.metadata.resource_version
    return str(listed.metadata.resource_version)


def names_of(listed: client.V1ConfigMapList | aclient.V1ConfigMapList) -> list[str]:
    return [str(item.metadata.name) for item in listed.items if item.metadata is not None]


def compacted_version(core: client.CoreV1Api) -> tuple[str, set[str]]:
    """A version listed once, then compacted away by later writes; the names there are now."""
    core.create_namespaced_config_map(NAMESPACE, configmap("before"))
    old = list_version(core.list_namespaced_config_map(NAMESPACE))
    later = {f"later-{i}" for i in range(WINDOW * 2)}
    for name in sorted(later):
        core.create_namespaced_config_map(NAMESPACE, configmap(name))
    with pytest.raises(ApiException) as gone:  # the precondition of the tests below
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_config_map, NAMESPACE, resource_version=old, timeout_seconds=1
        )
        next(iter(stream))
    assert gone.value.status == 410
    return old, {"before", *later}


def test_a_compacted_version_lists_again_and_a_watch_the_server_ends_resumes(
    compacting_apiserver: ApiServerHandle,
) -> None:
    core = client.CoreV1Api(
        config.new_client_from_config(config_file=str(compacting_apiserver.kubeconfig))  # type: ignore[no-untyped-call]
    )
    old, existing = compacted_version(core)
    seen: dict[str, str] = {}
    watched_from: list[str | None] = []
    listed_at: list[str | None] = []

    def relist() -> str | None:
        listed = core.list_namespaced_config_map(NAMESPACE)
        for name in names_of(listed):
            seen.setdefault(name, "listed")
        listed_at.append(list_version(listed))
        return listed_at[-1]

    def open_watch(version: str | None) -> Iterator[dict[str, Any]]:
        watched_from.append(version)
        stream: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_config_map,
            NAMESPACE,
            resource_version=version,
            timeout_seconds=WATCH_S,
        )
        return stream

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "ADDED":
            seen.setdefault(event["object"].metadata.name, "watched")

    def version_of(event: dict[str, Any]) -> str | None:
        return str(event["object"].metadata.resource_version)

    cursor = Cursor("configmaps", transient=(Exception,))
    cursor.listed(old)  # a follower whose version aged while it was away (or slow)
    stop = threading.Event()
    follower = BlockingFollower(relist, open_watch, on_event, version_of)
    thread = threading.Thread(target=follow_blocking, args=(follower, cursor, stop), daemon=True)
    thread.start()
    try:
        until_sync(lambda: len(listed_at), lambda n: n >= 1, what="a list after the 410")
        assert existing <= seen.keys()
        core.create_namespaced_config_map(NAMESPACE, configmap("after"))
        until_sync(lambda: seen.get("after"), lambda how: how == "watched", what="a live event")
        until_sync(
            lambda: len(watched_from),
            lambda n: n >= 4,
            within=10 + 4 * WATCH_S,
            what="watches the server ended, resumed",
        )
        assert len(listed_at) == 1, "a watch the server ended was followed by a list"
        assert watched_from[:2] == [old, listed_at[0]]
        assert old not in watched_from[2:], "the expired version was asked for again"
    finally:
        stop.set()
        thread.join(timeout=10 + WATCH_S)
    assert not thread.is_alive()


async def test_an_asyncio_follow_lists_again_after_a_410(
    compacting_apiserver: ApiServerHandle,
) -> None:
    sync_core = client.CoreV1Api(
        config.new_client_from_config(config_file=str(compacting_apiserver.kubeconfig))  # type: ignore[no-untyped-call]
    )
    old, existing = compacted_version(sync_core)
    kubeconfig = str(compacting_apiserver.kubeconfig)
    api = await aconfig.new_client_from_config(config_file=kubeconfig)
    core = aclient.CoreV1Api(api)
    seen: dict[str, str] = {}

    async def relist() -> str | None:
        listed = await core.list_namespaced_config_map(NAMESPACE)
        for name in names_of(listed):
            seen.setdefault(name, "listed")
        return list_version(listed)

    @contextlib.asynccontextmanager
    async def open_watch(version: str | None) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async with awatch.Watch() as stream:
            yield stream.stream(
                core.list_namespaced_config_map,
                NAMESPACE,
                resource_version=version,
                timeout_seconds=WATCH_S,
            )

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "ADDED":
            seen.setdefault(event["raw_object"]["metadata"]["name"], "watched")

    def version_of(event: dict[str, Any]) -> str | None:
        return str(event["raw_object"]["metadata"]["resourceVersion"])

    async def lists() -> int:
        return cursor.lists

    async def after() -> str | None:
        return seen.get("after")

    cursor = Cursor("configmaps", transient=(Exception,))
    cursor.listed(old)
    follower = Follower(relist, open_watch, on_event, version_of)
    task = asyncio.create_task(follow(follower, cursor))
    try:
        await until(lists, lambda n: n >= 2, what="a list after the 410")
        assert existing <= seen.keys()
        await core.create_namespaced_config_map(
            NAMESPACE, aclient.V1ConfigMap(metadata=aclient.V1ObjectMeta(name="after"))
        )
        await until(after, lambda how: how == "watched", what="a live event")
        assert cursor.lists == 2 and not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await api.close()
