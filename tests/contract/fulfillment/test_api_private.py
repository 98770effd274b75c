"""The private API (the service's controller, the operator's feedback, admins): every tenant's
records, finalizers, status writes, signal, hubs, and the private event stream."""

from __future__ import annotations

import pytest

from tests.harness.fulfillment import (
    HUBS,
    PRIVATE,
    PRIVATE_EVENTS,
    PUBLIC,
    Tenant,
    wait_line,
)

pytestmark = pytest.mark.stack

FINALIZER = "fulfillment-controller"
PROVISIONED = {
    "type": "COMPUTE_INSTANCE_CONDITION_TYPE_PROVISIONED",
    "status": "CONDITION_STATUS_TRUE",
    "last_transition_time": "2026-12-07T00:00:00Z",
    "reason": "AsExpected",
    "message": "x'; DROP TABLE compute_instances; --",
}


async def test_an_admin_sees_every_tenants_records_and_their_finalizers(
    admin: Tenant, acme: Tenant, globex: Tenant
) -> None:
    mine, theirs = await acme.create("a"), await globex.create("g")
    flt = f'this.metadata.tenant in ["{acme.name}", "{globex.name}"]'
    status, page = await admin.call("GET", PRIVATE, params={"filter": flt})
    assert status == 200, page
    assert {i["id"] for i in page["items"]} == {mine["id"], theirs["id"]}
    assert all("finalizers" in i["metadata"] for i in page["items"])


async def test_status_written_by_the_controller_reaches_the_tenant_without_the_hub(
    admin: Tenant, acme: Tenant
) -> None:
    created = await acme.create("web")
    status, written = await admin.call(
        "PATCH",
        f"{PRIVATE}/{created['id']}",
        params={"update_mask": "status.state,status.conditions,status.hub,metadata.finalizers"},
        json={
            "metadata": {"finalizers": [FINALIZER]},
            "status": {
                "state": "COMPUTE_INSTANCE_STATE_STARTING",
                "conditions": [PROVISIONED],
                "hub": "local",
            },
        },
    )
    assert status == 200, written
    assert written["status"]["hub"] == "local"
    assert written["metadata"]["finalizers"] == [FINALIZER]
    status, seen = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert status == 200, seen
    assert seen["status"]["state"] == "COMPUTE_INSTANCE_STATE_STARTING"
    assert seen["status"]["conditions"] == [PROVISIONED]
    assert "hub" not in seen["status"] and "finalizers" not in seen["metadata"]


async def test_a_status_write_with_a_wrong_enum_is_422_and_writes_nothing(
    admin: Tenant, acme: Tenant
) -> None:
    created = await acme.create("web")
    status, answer = await admin.call(
        "PATCH",
        f"{PRIVATE}/{created['id']}",
        params={"update_mask": "status.state"},
        json={"status": {"state": "RUNNING"}},
    )
    assert status == 422, answer
    assert answer["details"][0]["field"] == "status.state"
    _, after = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert after == created


async def test_a_finalizer_holds_a_deleted_record_until_it_is_removed(
    admin: Tenant, acme: Tenant
) -> None:
    created = await acme.create("web")
    path = f"{PRIVATE}/{created['id']}"
    await admin.call(
        "PATCH",
        path,
        params={"update_mask": "metadata.finalizers"},
        json={"metadata": {"finalizers": [FINALIZER]}},
    )
    async with admin.http.get(
        PRIVATE_EVENTS, params={"filter": f'this.id == "{created["id"]}"'}
    ) as stream:
        status, deleted = await acme.call("DELETE", f"{PUBLIC}/{created['id']}")
        assert status == 200 and deleted["metadata"]["deletion_timestamp"], deleted
        status, held = await acme.call("GET", f"{PUBLIC}/{created['id']}")
        assert status == 200 and held["metadata"]["deletion_timestamp"], held
        await admin.call("POST", f"{path}/signal")
        status, released = await admin.call(
            "PATCH",
            path,
            params={"update_mask": "metadata.finalizers"},
            json={"metadata": {"finalizers": []}},
        )
        assert status == 200, released
        types = [(await wait_line(stream))["type"] for _ in range(3)]
    assert types == [
        "EVENT_TYPE_OBJECT_UPDATED",
        "EVENT_TYPE_OBJECT_SIGNALED",
        "EVENT_TYPE_OBJECT_DELETED",
    ]
    status, gone = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert status == 404, gone


async def test_an_admin_may_create_for_a_tenant_and_the_tenant_sees_it(
    admin: Tenant, acme: Tenant
) -> None:
    status, created = await admin.call(
        "POST",
        PRIVATE,
        json={
            "metadata": {"name": "for-acme", "tenant": acme.name, "finalizers": [FINALIZER]},
            "spec": {"template": "small"},
        },
    )
    assert status == 200, created
    assert created["metadata"]["creator"] == "system:serviceaccount:fulfillment-system:controller"
    status, seen = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert status == 200 and seen["metadata"]["tenant"] == acme.name, seen


async def test_hubs_are_kept_with_their_kubeconfig_reference_and_namespace(admin: Tenant) -> None:
    status, hub = await admin.call(
        "POST",
        HUBS,
        json={
            "metadata": {"name": "local"},
            "spec": {"kubeconfig_ref": "secret:fulfillment-system/hub-local", "namespace": "vms"},
        },
    )
    assert status == 200, hub
    status, fetched = await admin.call("GET", f"{HUBS}/{hub['id']}")
    assert status == 200 and fetched["spec"]["namespace"] == "vms", fetched
    status, answer = await admin.call(
        "POST", HUBS, json={"spec": {"kubeconfig_ref": "x", "namespace": "Not_A_Label"}}
    )
    assert status == 422 and answer["details"][0]["field"] == "spec.namespace", answer
    status, answer = await admin.call(
        "POST", HUBS, json={"spec": {"namespace": "vms"}, "kubeconfig": "inline"}
    )
    assert status == 422, answer
