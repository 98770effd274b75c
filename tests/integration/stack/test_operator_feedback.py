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

One stack for the module (`stack_lab.open_lab`), the tenants' side from `harness.feedback`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from cloudkit.api import names
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
