"""The operator's own watches (operator/watches.py) against the local API server: a kind whose
CRD does not exist yet is followed once it does, every object reaches the handler (listed ones
as `None`, then each change with its type), and a version compacted away lists again, an
object deleted meanwhile delivered as DELETED (no event of its deletion will ever come).

The server keeps a change log of WINDOW changes only, so a few writes compact a version away as
thousands would on a busy cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from cloudkit.api import names
from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.kubevirt.crd import vm_crd_manifest
from cloudkit.operator.kube import load_configuration
from cloudkit.operator.watches import TRANSIENT, VIRTUAL_MACHINES, Kind, Watches
from cloudkit.watching import Cursor
from tests.contract.conftest import serving
from tests.waiting import until

pytestmark = pytest.mark.stack

WINDOW = 20
NAMESPACE = "default"
Seen = list[tuple[str | None, str]]


@pytest.fixture
def compacting_apiserver(tmp_path: Path) -> Iterator[ApiServerHandle]:
    with serving(tmp_path / "state", change_log_window=WINDOW) as handle:
        yield handle


@pytest.fixture
async def watches(compacting_apiserver: ApiServerHandle) -> AsyncIterator[Watches]:
    configuration = await load_configuration(compacting_apiserver.kubeconfig)
    made = Watches(client.ApiClient(configuration=configuration))
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def admin(compacting_apiserver: ApiServerHandle) -> AsyncIterator[client.ApiClient]:
    configuration = await load_configuration(compacting_apiserver.kubeconfig)
    async with client.ApiClient(configuration=configuration) as api:
        yield api


@contextlib.asynccontextmanager
async def following(
    watches: Watches, seen: Seen, cursor: Cursor | None = None, synced: list[Kind] | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    def handler(event_type: str | None, obj: dict[str, Any]) -> None:
        seen.append((event_type, obj["metadata"]["name"]))

    told = None if synced is None else synced.append
    task = asyncio.create_task(watches.follow(VIRTUAL_MACHINES, handler, cursor, synced=told))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def create_vm_crd(api: client.ApiClient) -> None:
    # A plain dict serializes like the model; the stubs only name the model.
    manifest = cast(Any, vm_crd_manifest())
    await client.ApiextensionsV1Api(api).create_custom_resource_definition(manifest)


async def create_vm(api: client.ApiClient, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {names.VM_INSTANCE_LABEL: "ci-1"}},
        "spec": {"running": True},
    }
    created: dict[str, Any] = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, NAMESPACE, names.VM_PLURAL, body
    )
    return created


async def test_a_kind_is_followed_once_its_crd_exists_and_every_change_is_delivered(
    watches: Watches, admin: client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cloudkit.watching")
    seen: Seen = []
    async with following(watches, seen) as task:

        async def refused() -> bool:
            return any("VirtualMachines" in r.getMessage() for r in caplog.records)

        await until(refused, bool, what="the watch of a kind without its CRD refused")
        await create_vm_crd(admin)
        await create_vm(admin, "vm-1")

        async def delivered() -> Seen:
            return seen

        await until(delivered, lambda s: s, within=30, what="the VM listed or added")
        custom = client.CustomObjectsApi(admin)
        await custom.patch_namespaced_custom_object(
            names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, NAMESPACE, names.VM_PLURAL, "vm-1",
            [{"op": "add", "path": "/metadata/labels/changed", "value": "yes"}],
        )  # fmt: skip
        await custom.delete_namespaced_custom_object(
            names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, NAMESPACE, names.VM_PLURAL, "vm-1"
        )
        await until(delivered, lambda s: ("DELETED", "vm-1") in s, within=30, what="the deletion")
        assert not task.done()
    # Created before or after the first list: either way listed (None) or ADDED, then the rest.
    assert seen[0] in ((None, "vm-1"), ("ADDED", "vm-1")), seen
    assert seen[1:] == [("MODIFIED", "vm-1"), ("DELETED", "vm-1")], seen


async def test_a_version_compacted_away_lists_again_and_what_went_meanwhile_is_deleted(
    watches: Watches, admin: client.ApiClient
) -> None:
    await create_vm_crd(admin)
    custom = client.CustomObjectsApi(admin)
    listed = await custom.list_cluster_custom_object(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL
    )
    old = listed["metadata"]["resourceVersion"]
    for i in range(WINDOW * 2):
        await create_vm(admin, f"vm-{i}")
    seen: Seen = []
    synced: list[Kind] = []
    async with following(watches, seen, synced=synced):  # the follow lists, then watches

        async def listed_once() -> list[Kind]:
            return synced

        await until(listed_once, bool, within=30, what="the first list")
    assert synced == [VIRTUAL_MACHINES]
    await custom.delete_namespaced_custom_object(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, NAMESPACE, names.VM_PLURAL, "vm-0"
    )
    for i in range(WINDOW * 2):
        await create_vm(admin, f"later-{i}")
    cursor = Cursor(VIRTUAL_MACHINES.what, transient=TRANSIENT)
    cursor.listed(old)  # the follow resumes at a version that aged while it was away
    seen.clear()
    async with following(watches, seen, cursor, synced) as task:

        async def lists() -> int:
            return cursor.lists

        await until(lists, lambda n: n >= 2, within=30, what="a list after the 410")
        assert synced == [VIRTUAL_MACHINES, VIRTUAL_MACHINES]
        await create_vm(admin, "after")

        async def after() -> Seen:
            return seen

        await until(after, lambda s: ("ADDED", "after") in s, within=30, what="a live event")
        assert not task.done()
    survivors = {f"vm-{i}" for i in range(1, WINDOW * 2)} | {
        f"later-{i}" for i in range(WINDOW * 2)
    }
    assert {name for kind, name in seen if kind is None} == survivors
    assert seen[0] == ("DELETED", "vm-0"), "the deletion missed while away comes first"
