"""The fulfillment controller as a process, between the fulfillment service (a process) and the
local API server: a tenant's record becomes a ComputeInstance with the right label, annotation
and spec; a mutable spec change patches it; user data becomes a Secret owned by it; a deleted
record waits for its resource to be gone, then is archived (woken by the hub's watch, not a
periodic look); a failure is the record's state
FAILED with a reason; of two replicas, only the Lease's holder acts.

No operator runs here: a resource without one keeps no finalizer, so a deletion is immediate.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from cloudkit.api import names
from cloudkit.local.apiserver.main import ApiServerHandle
from tests.harness.fulfillment import (
    ADMIN,
    HUBS,
    PRIVATE,
    PUBLIC,
    FulfillmentService,
    Issuer,
    Tenant,
)
from tests.harness.fulfillment_controller import (
    LEASE_NAME,
    ControllerProcess,
    install_crd,
    kube_api,
    lease_holder,
    new_namespace,
    resources_of,
    secret_of,
)
from tests.waiting import until

pytestmark = pytest.mark.stack

FINALIZER = "fulfillment-controller"
WITHIN = 60  # two shared cores: a process's first reconcile can take seconds
STARTING = "COMPUTE_INSTANCE_STATE_STARTING"
FAILED = "COMPUTE_INSTANCE_STATE_FAILED"
PROVISIONED = "COMPUTE_INSTANCE_CONDITION_TYPE_PROVISIONED"
HOLD = "tests.cloudkit.openshift.io/hold"
RECHECK = "3600"
"""The controllers' own looks again and re-lists: never within a test, so what wakes a record
is an event."""


def set_finalizers(cluster: Cluster, name: str, finalizers: list[str]) -> None:
    custom: Any = client.CustomObjectsApi(kube_api(cluster.kubeconfig))
    custom.patch_namespaced_custom_object(
        names.GROUP,
        names.VERSION,
        cluster.namespace,
        names.PLURAL,
        name,
        {"metadata": {"finalizers": finalizers}},
    )


@pytest.fixture(scope="module")
def controlled_service(
    tmp_path_factory: pytest.TempPathFactory,
    fulfillment_issuer: Issuer,
    apiserver_session: ApiServerHandle,
) -> Iterator[FulfillmentService]:
    """A service of this module's own: its controllers see every record, so no other module's."""
    running = FulfillmentService(
        tmp_path_factory.mktemp("fulfillment-controlled"),
        fulfillment_issuer,
        extra_args=("--kubeconfig", str(apiserver_session.kubeconfig), "--admin", ADMIN),
    )
    asyncio.run(running.start())
    install_crd(apiserver_session.kubeconfig)
    yield running
    running.stop()


class Cluster:
    """The test's namespace on the local API server: its hub, its Lease, its resources."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def resources(self, record_id: str) -> list[dict[str, Any]]:
        return resources_of(self.kubeconfig, self.namespace, record_id)

    async def resource(self, record_id: str, check: Any = bool) -> dict[str, Any]:
        found = await until(
            lambda: asyncio.to_thread(self.resources, record_id),
            lambda items: bool(items) and check(items[0]),
            within=WITHIN,
            what=f"the ComputeInstance of record {record_id}",
        )
        return dict(found[0])


@pytest.fixture
def cluster(apiserver_session: ApiServerHandle) -> Cluster:
    return Cluster(apiserver_session.kubeconfig, new_namespace(apiserver_session.kubeconfig, "fc"))


@pytest.fixture
async def admin_api(
    controlled_service: FulfillmentService, admin_token: str
) -> AsyncIterator[Tenant]:
    client = Tenant(ADMIN, controlled_service.session(admin_token))
    yield client
    await client.close()


@pytest.fixture
async def tenant(controlled_service: FulfillmentService) -> AsyncIterator[Tenant]:
    acme = controlled_service.tenant("acme")
    yield acme
    await acme.close()


async def register_hub(admin_api: Tenant, cluster: Cluster, ref: str) -> str:
    body = {
        "metadata": {"name": "local"},
        "spec": {"kubeconfig_ref": ref, "namespace": cluster.namespace},
    }
    status, hub = await admin_api.call("POST", HUBS, json=body)
    assert status == 200, hub
    return str(hub["id"])


def controller(
    tmp_path: Path,
    service: FulfillmentService,
    token: str,
    cluster: Cluster,
    identity: str = "replica-a",
) -> ControllerProcess:
    return ControllerProcess(
        tmp_path / identity,
        service,
        token,
        cluster.kubeconfig,
        lease_namespace=cluster.namespace,
        identity=identity,
        extra_args=("--recheck-seconds", RECHECK, "--stream-lifetime-seconds", RECHECK),
    )


@pytest.fixture
async def hub(admin_api: Tenant, cluster: Cluster) -> str:
    """A hub on the test's namespace whose kubeconfig_ref is the test's own."""
    return await register_hub(admin_api, cluster, f"hub-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def running(
    tmp_path: Path,
    controlled_service: FulfillmentService,
    admin_token: str,
    cluster: Cluster,
    admin_api: Tenant,
    hub: str,
) -> AsyncIterator[ControllerProcess]:
    """One controller that knows the test's hub."""
    replica = controller(tmp_path, controlled_service, admin_token, cluster)
    status, found = await admin_api.call("GET", f"{HUBS}/{hub}")
    assert status == 200, found
    replica.give_hub(found["spec"]["kubeconfig_ref"])
    replica.start()
    yield replica
    replica.stop()
    print(replica.log()[-4000:])


async def private_record(admin_api: Tenant, record_id: str) -> dict[str, Any]:
    status, record = await admin_api.call("GET", f"{PRIVATE}/{record_id}")
    assert status == 200, record
    return dict(record)


FULL_SPEC: dict[str, Any] = {
    "template": "cloudkit.templates.ocp_vm",
    "template_parameters": {"flavor": "small", "count": 2},
    "image": {"source_type": "registry", "source_ref": "quay.io/cloudkit/fedora:40"},
    "boot_disk": {"size_gib": 20},
    "additional_disks": [{"size_gib": 5}],
    "run_strategy": "Always",
    "ssh_public_key": "ssh-ed25519 AAAA tenant@example",
    "user_data": "#cloud-config\nusers: [{name: x}]\n",
}


async def test_a_record_becomes_a_resource_with_its_label_annotation_spec_and_user_data(
    running: ControllerProcess, tenant: Tenant, admin_api: Tenant, cluster: Cluster, hub: str
) -> None:
    created = await tenant.create("web", **{k: v for k, v in FULL_SPEC.items() if k != "template"})
    record_id = created["id"]
    resource = await cluster.resource(record_id)
    metadata = resource["metadata"]
    assert metadata["name"].startswith("vm-") and metadata["generateName"] == "vm-"
    assert metadata["labels"][names.INSTANCE_UUID_LABEL] == record_id
    assert metadata["annotations"][names.TENANT_ANNOTATION] == tenant.name
    assert resource["spec"] == {
        "templateID": "small",  # Tenant.create's template
        "templateParameters": '{"count": 2, "flavor": "small"}',
        "image": {"sourceType": "registry", "sourceRef": "quay.io/cloudkit/fedora:40"},
        "bootDisk": {"sizeGiB": 20},
        "additionalDisks": [{"sizeGiB": 5}],
        "runStrategy": "Always",
        "sshKey": "ssh-ed25519 AAAA tenant@example",
        "userDataSecretRef": {"name": f"{record_id}-user-data"},
    }
    secret = await until(
        lambda: asyncio.to_thread(
            secret_of, cluster.kubeconfig, cluster.namespace, f"{record_id}-user-data"
        ),
        lambda s: s is not None,
        within=WITHIN,
        what="the user data Secret",
    )
    owners = secret.metadata.owner_references or []
    assert [(o.kind, o.name, o.uid) for o in owners] == [
        (names.KIND, metadata["name"], metadata["uid"])
    ]
    assert base64.b64decode(secret.data["userdata"]).decode() == FULL_SPEC["user_data"]
    record = await until(
        lambda: private_record(admin_api, record_id),
        lambda r: r["status"].get("hub") == hub,
        within=WITHIN,
        what="the record placed on the hub",
    )
    assert FINALIZER in record["metadata"]["finalizers"]
    assert record["status"]["state"] == STARTING
    assert record["status"]["state_transition_time"]
    assert "finalizers" not in (await tenant.call("GET", f"{PUBLIC}/{record_id}"))[1]["metadata"]


async def test_a_mutable_spec_change_patches_the_resource(
    running: ControllerProcess, tenant: Tenant, cluster: Cluster
) -> None:
    created = await tenant.create("db", run_strategy="Always")
    record_id = created["id"]
    before = await cluster.resource(record_id)
    assert before["spec"]["runStrategy"] == "Always"
    assert "restartRequestedAt" not in before["spec"]
    change = {"spec": {"run_strategy": "Halted", "restart_requested_at": "2026-12-07T01:02:03Z"}}
    status, body = await tenant.call(
        "PATCH",
        f"{PUBLIC}/{record_id}",
        json=change,
        params={"update_mask": "spec.run_strategy,spec.restart_requested_at"},
    )
    assert status == 200, body
    after = await cluster.resource(record_id, lambda r: r["spec"].get("runStrategy") == "Halted")
    assert after["spec"]["restartRequestedAt"] == "2026-12-07T01:02:03Z"
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "patched, not re-created"
    assert len(cluster.resources(record_id)) == 1


async def test_a_deleted_record_goes_once_its_resource_is_gone(
    running: ControllerProcess, tenant: Tenant, admin_api: Tenant, cluster: Cluster
) -> None:
    created = await tenant.create("gone", user_data="#cloud-config\n")
    record_id = created["id"]
    resource = await cluster.resource(record_id)
    await until(
        lambda: private_record(admin_api, record_id),
        lambda r: FINALIZER in r["metadata"]["finalizers"],
        within=WITHIN,
        what="the controller's finalizer",
    )
    status, deleted = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
    assert status == 200 and deleted["metadata"]["deletion_timestamp"], deleted
    await until(
        lambda: asyncio.to_thread(cluster.resources, record_id),
        lambda items: items == [],
        within=WITHIN,
        what="the resource gone",
    )
    status, _ = await until(
        lambda: tenant.call("GET", f"{PUBLIC}/{record_id}"),
        lambda answer: answer[0] == 404,
        within=WITHIN,
        what="the record archived (404)",
    )
    assert status == 404
    log = running.log()
    assert log.index(f"record {record_id}: deleting ComputeInstance") < log.index(
        f"record {record_id}: finalizer removed"
    ), "the finalizer went only after the resource's deletion"
    assert resource["metadata"]["name"] in log


async def test_a_deleted_record_is_woken_by_its_resource_going_not_by_a_recheck(
    running: ControllerProcess, tenant: Tenant, cluster: Cluster
) -> None:
    """The controllers here look again by themselves, and re-list, only every hour (RECHECK):
    the record is archived because the hub's watch saw its resource go. The
    resource is held by a finalizer of the test's own, so the controller's look after deleting
    it finds it still there, and only the change that follows can wake the record."""
    created = await tenant.create("watched")
    record_id = created["id"]
    resource = await cluster.resource(record_id)
    name = resource["metadata"]["name"]
    await asyncio.to_thread(set_finalizers, cluster, name, [HOLD])
    status, _ = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
    assert status == 200
    await until(
        lambda: asyncio.sleep(0, running.log()),
        lambda log: f"record {record_id}: deleting ComputeInstance" in log,
        within=WITHIN,
        what="the controller's deletion of the resource",
    )
    await cluster.resource(record_id, lambda r: bool(r["metadata"].get("deletionTimestamp")))
    await asyncio.to_thread(set_finalizers, cluster, name, [])
    await until(
        lambda: tenant.call("GET", f"{PUBLIC}/{record_id}"),
        lambda answer: answer[0] == 404,
        within=WITHIN,
        what="the record archived (404) on its resource's DELETED event",
    )


async def test_a_record_that_cannot_become_a_resource_is_failed_with_the_reason(
    running: ControllerProcess, tenant: Tenant, admin_api: Tenant, cluster: Cluster
) -> None:
    status, created = await tenant.call(
        "POST",
        PUBLIC,
        json={"metadata": {"name": "bad"}, "spec": {"template": "no-dashes-allowed"}},
    )
    assert status == 200, created
    record = await until(
        lambda: private_record(admin_api, created["id"]),
        lambda r: r["status"].get("state") == FAILED,
        within=WITHIN,
        what="state FAILED",
    )
    (provisioned,) = [c for c in record["status"]["conditions"] if c["type"] == PROVISIONED]
    assert provisioned["status"] == "CONDITION_STATUS_FALSE"
    assert provisioned["reason"] == "ReconciliationFailed"
    assert "templateID" in provisioned["message"], provisioned
    assert "422" in provisioned["message"], provisioned
    assert cluster.resources(created["id"]) == []


async def test_a_deleted_record_whose_hub_is_gone_only_loses_its_finalizer(
    running: ControllerProcess, tenant: Tenant, admin_api: Tenant, cluster: Cluster, hub: str
) -> None:
    created = await tenant.create("orphan")
    record_id = created["id"]
    await cluster.resource(record_id)
    await until(
        lambda: private_record(admin_api, record_id),
        lambda r: FINALIZER in r["metadata"]["finalizers"],
        within=WITHIN,
        what="the controller's finalizer",
    )
    status, body = await admin_api.call("DELETE", f"{HUBS}/{hub}")
    assert status == 200, body
    status, body = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
    assert status == 200, body
    await until(
        lambda: tenant.call("GET", f"{PUBLIC}/{record_id}"),
        lambda answer: answer[0] == 404,
        within=WITHIN,
        what="the record archived (404)",
    )
    # Nothing was done on the cluster: it stands for one that is gone.
    assert len(cluster.resources(record_id)) == 1


async def test_of_two_replicas_only_the_lease_holder_acts(
    tmp_path: Path,
    controlled_service: FulfillmentService,
    admin_token: str,
    tenant: Tenant,
    admin_api: Tenant,
    cluster: Cluster,
) -> None:
    ref = f"hub-{uuid.uuid4().hex[:8]}"
    await register_hub(admin_api, cluster, ref)
    replicas = {
        name: controller(tmp_path, controlled_service, admin_token, cluster, identity=name)
        for name in ("replica-a", "replica-b")
    }
    try:
        for replica in replicas.values():
            replica.give_hub(ref)
            replica.start()
        holder = await until(
            lambda: asyncio.to_thread(
                lease_holder, cluster.kubeconfig, cluster.namespace, LEASE_NAME
            ),
            lambda h: h in replicas,
            within=WITHIN,
            what="a Lease holder",
        )
        (standby,) = [name for name in replicas if name != holder]
        first = [await tenant.create(f"one-{n}") for n in range(3)]
        for record in first:
            await cluster.resource(record["id"])
            assert len(cluster.resources(record["id"])) == 1
        # Both replicas follow the stream; the standby has taken no record in hand.
        await until(
            lambda: asyncio.sleep(0, replicas[standby].log()),
            lambda log: "identity" in log,
            within=WITHIN,
            what="the standby's start",
        )
        for record in first:
            assert f"record {record['id']}" not in replicas[standby].log()
            assert f"record {record['id']}" in replicas[holder].log()
        replicas[holder].stop()  # SIGTERM releases the Lease: the standby takes over
        second = await tenant.create("two")
        await cluster.resource(second["id"])
        assert f"record {second['id']}" in replicas[standby].log()
    finally:
        for replica in replicas.values():
            replica.stop()


async def test_a_broken_event_stream_is_watched_again_and_the_records_listed(
    running: ControllerProcess,
    tenant: Tenant,
    controlled_service: FulfillmentService,
    cluster: Cluster,
) -> None:
    before = await tenant.create("before")
    await cluster.resource(before["id"])
    await controlled_service.restart()  # kill -9, same port: the controller's stream breaks
    later = controlled_service.tenant("acme")  # the old session's connections died with it
    try:
        after = await later.create("after")
        # Well before the periodic re-list (600 s): only re-watching after the break finds it.
        await cluster.resource(after["id"])
    finally:
        await later.close()
    assert running.alive()
