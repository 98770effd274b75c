"""The operator's feedback through the real processes: a tenant orders through the fulfillment
API, the service's controller creates the ComputeInstance, the operator provisions it (simulated
AAP jobs: the playbook is not the subject) and feeds its status back to the record, which the
tenant reads.

- the tenant's stream shows STARTING, then RUNNING with the VM's address;
- a deletion mid-provision: the record's last version, as archived (the DELETED event carries
  it), is the resource's final state, then the record answers 404;
- the fulfillment API frozen (SIGSTOP: a black hole that accepts and never answers) does not
  slow provisioning: the instance is Ready long before one feedback request would time out,
  and the record catches up once the API answers again.

The same stack first shows `cloudkit up`'s fulfillment controller: the stack registers its own
cluster as a hub, the controller runs as its own ServiceAccount with only the rights it uses,
and a tenant's order becomes a ComputeInstance in the watched namespace and goes with it.

One stack for the module (`stack_lab.open_lab`), the tenants' side from `harness.feedback`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cloudkit.api import names
from cloudkit.fulfillment.client import FulfillmentClient, NotFound
from cloudkit.local.issuer.tokens import mint
from cloudkit.local.stack import StackHandle
from cloudkit.local.stack.fulfillment import FulfillmentEndpoint
from cloudkit.local.stack.fulfillment_controller import (
    CONTROLLER_ACCOUNT,
    HUB_REF,
    ControllerPlaces,
)
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path
from tests.harness.feedback import (
    STATE,
    Orders,
    condition,
    following,
    open_orders,
)
from tests.harness.fulfillment import PUBLIC
from tests.harness.stack_lab import INSTANCES, NAMESPACE, Lab, job_of, open_lab, phase, status_of
from tests.waiting import until

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
]

WITHIN = 120.0
FEEDBACK_TIMEOUT_S = 60
"""The operator's per-request deadline to the API in this module: longer than provisioning
takes here, so a feedback call waited for inside a lifecycle pass would show as a delay."""
READY_BOUND_S = 40.0
"""Provisioning with the API frozen must end before this (well under FEEDBACK_TIMEOUT_S;
the normal figure is a few seconds, printed)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    state = tmp_path_factory.mktemp("feedback") / "stack"
    env = {"CLOUDKIT_FULFILLMENT_TIMEOUT": f"{FEEDBACK_TIMEOUT_S}s"}
    async with open_lab(
        state,
        vm_boot_seconds=1.0,
        env=env,
        simulated_jobs={"run_seconds": 2},
        with_fulfillment=True,
    ) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def orders(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Orders]:
    async with open_orders(lab, tmp_path_factory.mktemp("controller")) as opened:
        yield opened


def instances_of(namespace: str) -> str:
    return resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=namespace)


async def refused(call: Any) -> int | None:
    """The HTTP status a call was refused with (None: it was allowed)."""
    try:
        await call
    except KubeError as error:
        return error.status
    return None


def check_files(endpoint: FulfillmentEndpoint, places: ControllerPlaces) -> None:
    """The controller's log is where fulfillment.json says; its token and kubeconfig are 0600."""
    assert Path(endpoint.controller_log).is_file()
    for secret in (places.token_file, places.kubeconfig):
        assert secret.stat().st_mode & 0o777 == 0o600


async def check_controller_rights(handle: StackHandle, places: ControllerPlaces) -> None:
    """The hub kubeconfig is the controller's account: ComputeInstances in the instance
    namespace, nothing elsewhere, no Secrets to read beyond its own namespace's user data."""
    async with KubeClient.from_kubeconfig(places.kubeconfig) as kube:
        review = await kube.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        user = review["status"]["userInfo"]["username"]
        assert user == "system:serviceaccount:" + CONTROLLER_ACCOUNT
        await kube.list_objects(instances_of(handle.instance_namespace))  # allowed
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": "elsewhere"},
            "spec": {"templateID": "t"},
        }
        assert await refused(kube.create(instances_of("default"), body)) == 403
        secrets = resource_path("", "v1", "secrets", namespace="kube-system")
        assert await refused(kube.list_objects(secrets)) == 403


async def test_an_order_becomes_an_instance_on_the_stacks_own_hub(lab: Lab) -> None:
    handle = lab.handle
    endpoint = FulfillmentEndpoint.read(handle.state_dir)
    assert endpoint.hub and endpoint.hub == handle.hub_id
    places = ControllerPlaces(handle.state_dir / "fulfillment-controller")
    assert handle.controller_token_file == places.token_file
    check_files(endpoint, places)
    await check_controller_rights(handle, places)

    ca_file = Path(endpoint.ca_file)
    token_file = places.token_file
    async with FulfillmentClient(
        endpoint.address, lambda: token_file.read_text().strip(), ca_file=ca_file, private=True
    ) as admin:
        hubs = await admin.list_all("hubs")
        assert [(h["id"], h["spec"]) for h in hubs] == [
            (handle.hub_id, {"kubeconfig_ref": HUB_REF, "namespace": handle.instance_namespace})
        ]
    issuer = Path(endpoint.issuer_dir)
    async with (
        FulfillmentClient(
            endpoint.address, lambda: mint(issuer, tenant="acme"), ca_file=ca_file
        ) as acme,
        KubeClient.from_kubeconfig(handle.kubeconfig) as kube,
    ):
        order = await acme.create({"metadata": {"name": "web"}, "spec": {"template": "t"}})
        selector = {"labelSelector": f"{names.INSTANCE_UUID_LABEL}={order['id']}"}
        path = instances_of(handle.instance_namespace)

        async def instances() -> list[dict[str, Any]]:
            return list((await kube.list_objects(path, **selector)).get("items") or [])

        (made,) = await until(instances, bool, within=WITHIN, what="the order's instance")
        annotations = made["metadata"].get("annotations") or {}
        assert annotations.get(names.TENANT_ANNOTATION) == "acme"
        assert made["metadata"]["name"].startswith("vm-")

        async def record() -> dict[str, Any] | None:
            try:
                return await acme.get(order["id"])
            except NotFound:
                return None

        await until(instances, lambda found: bool(found and found[0].get("status")),
                    within=WITHIN, what="the operator at work on it")  # fmt: skip
        await acme.delete(order["id"])
        await until(record, lambda r: r is None, within=WITHIN, what="the record gone")
        assert await instances() == []  # the record goes only once its instance is gone


async def resource_of(orders: Orders, record_id: str) -> dict[str, Any]:
    found = await until(
        lambda: orders.resource(record_id), bool, within=WITHIN, what="the order's resource"
    )
    return dict(found)


async def test_the_tenant_sees_starting_then_running_with_the_address(orders: Orders) -> None:
    tenant = orders.tenant("feedback")
    async with following(tenant) as seen:
        record = await tenant.create("web")
        record_id = record["id"]
        await until(
            lambda: asyncio.sleep(0, seen.get(record_id)),
            lambda s: s is not None and s.states()[-1:] == ["RUNNING"],
            within=WITHIN,
            what="RUNNING on the tenant's stream",
        )
    resource = await orders.resource(record_id)
    assert resource is not None
    states = seen[record_id].states()
    assert "STARTING" in states and states.index("STARTING") < states.index("RUNNING"), states
    status, body = await orders.record(tenant, record_id)
    assert status == 200, body
    address = status_of(resource).get("ipAddress")
    assert address and body["status"].get("internal_ip_address") == address, (body, resource)
    assert condition(body, "READY")["status"] == "CONDITION_STATUS_TRUE", body
    assert condition(body, "PROVISIONED")["status"] == "CONDITION_STATUS_TRUE", body
    assert names.FEEDBACK_FINALIZER in resource["metadata"]["finalizers"]


async def test_a_deletion_mid_provision_ends_with_the_final_state_then_404(orders: Orders) -> None:
    tenant = orders.tenant("feedback-delete")
    async with following(tenant) as seen:
        record = await tenant.create("doomed")
        record_id = record["id"]

        async def provisioning() -> dict[str, Any] | None:
            found = await orders.resource(record_id)
            return found if job_of(found, "provision").get("id") else None

        await until(provisioning, bool, within=WITHIN, what="a provision job launched")
        status, body = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
        assert status == 200, body
        await until(
            lambda: orders.record(tenant, record_id),
            lambda answer: answer[0] == 404,
            within=WITHIN,
            what="the record archived (404)",
        )
        archived = await until(
            lambda: asyncio.sleep(0, seen[record_id].deleted()),
            bool,
            within=WITHIN,
            what="the DELETED event",
        )
    assert await orders.resource(record_id) is None
    status_ = archived["status"]
    assert status_["state"] == STATE + "DELETING", archived
    provisioned = condition(archived, "PROVISIONED")
    assert provisioned.get("reason") == "Deprovisioned", archived
    assert "Deprovisioning job" in provisioned.get("message", ""), archived
    # The versions the tenant saw before the archive end with this same final state.
    updates = [r for kind, r in seen[record_id].versions if kind.endswith("UPDATED")]
    assert updates and condition(updates[-1], "PROVISIONED") == provisioned, updates[-1:]


async def test_a_frozen_api_does_not_slow_provisioning_and_the_record_catches_up(
    orders: Orders, lab: Lab
) -> None:
    tenant = orders.tenant("feedback-frozen")
    # The controller would need the API to create the resource: this test plays its part, so
    # the API can be frozen before the resource exists.
    orders.pause(orders.controller_pid)
    frozen = False
    try:
        record = await tenant.create("frozen")
        record_id = record["id"]
        orders.pause(orders.service_pid)
        frozen = True
        started = time.monotonic()
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {
                "generateName": "vm-",
                "namespace": NAMESPACE,
                "labels": {names.INSTANCE_UUID_LABEL: record_id},
                "annotations": {names.TENANT_ANNOTATION: tenant.name},
            },
            "spec": {"templateID": "small", "runStrategy": "Always"},
        }
        created = await lab.kube.create(INSTANCES, body)
        name = created["metadata"]["name"]
        await until(
            lambda: lab.get(name),
            lambda obj: phase(obj) == "Ready",
            within=READY_BOUND_S,
            what="Ready with the fulfillment API frozen",
        )
        print(f"\nReady with the API frozen in {time.monotonic() - started:.1f}s")
        ready = await lab.get(name)
        assert ready is not None and names.FEEDBACK_FINALIZER in ready["metadata"]["finalizers"]
        orders.resume(orders.service_pid)
        frozen = False
        caught_up = await until(
            lambda: orders.record(tenant, record_id),
            lambda answer: (
                answer[0] == 200 and answer[1]["status"].get("state") == STATE + "RUNNING"
            ),
            within=WITHIN,
            what="the record RUNNING once the API answers",
        )
        address = status_of(ready).get("ipAddress")
        assert caught_up[1]["status"].get("internal_ip_address") == address, caught_up
        # Deleting the resource waits for the feedback finalizer, which writes the end first.
        await lab.delete(name)
        await until(lambda: lab.get(name), lambda obj: obj is None, within=WITHIN, what="gone")
        status, last = await orders.record(tenant, record_id)
        assert status == 200, last
        assert condition(last, "PROVISIONED").get("reason") == "Deprovisioned", last
        # No finalizer holds it (the controller never saw it): archived at once.
        status, _ = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
        assert status == 200
    finally:
        if frozen:
            orders.resume(orders.service_pid)
        orders.resume(orders.controller_pid)
