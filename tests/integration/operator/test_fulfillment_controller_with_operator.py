"""An order through the fulfillment API, the controller and the operator together: the record's
resource is provisioned by the operator; deleting the record deprovisions it (the operator's
finalizer runs) before the controller lets the record go.

The API server and the automation service run in this process; the operator, the fulfillment
service, the issuer and the controller are processes.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from tests.harness.fulfillment import (
    ADMIN,
    HUBS,
    PUBLIC,
    FulfillmentService,
    service_account_token,
    serving,
)
from tests.harness.fulfillment_controller import ControllerProcess, resources_of
from tests.harness.operator_process import (
    DEPROVISION_TEMPLATE,
    NAMESPACE,
    AutomationService,
    Cluster,
    Operator,
)
from tests.waiting import until

pytestmark = pytest.mark.stack

WITHIN = 120


@pytest.fixture(scope="module")
def fulfillment(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FulfillmentService]:
    with serving(
        tmp_path_factory.mktemp("fulfillment"), cluster.handle.kubeconfig, ADMIN
    ) as service:
        yield service


def deprovisions(automation: AutomationService, resource_name: str) -> list[dict[str, Any]]:
    return [
        j
        for j in automation.jobs()
        if j.get("name") == DEPROVISION_TEMPLATE
        and f'"name": "{resource_name}"' in (j.get("extra_vars") or "")
    ]


async def test_a_deleted_order_is_deprovisioned_by_the_operator_before_the_record_goes(
    operator: Operator,
    cluster: Cluster,
    automation: AutomationService,
    fulfillment: FulfillmentService,
    tmp_path: Path,
) -> None:
    token = service_account_token(cluster.handle.kubeconfig, ADMIN)
    admin = fulfillment.tenant("admin")
    admin.http.headers["Authorization"] = f"Bearer {token}"
    tenant = fulfillment.tenant("acme")
    controller = ControllerProcess(
        tmp_path / "controller",
        fulfillment,
        token,
        cluster.handle.kubeconfig,
        lease_namespace=NAMESPACE,
        identity="controller",
    )
    try:
        status, hub = await admin.call(
            "POST",
            HUBS,
            json={"spec": {"kubeconfig_ref": "local", "namespace": NAMESPACE}},
        )
        assert status == 200, hub
        controller.hubs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cluster.handle.kubeconfig, controller.hubs_dir / "local")
        controller.start()
        record = await tenant.create("ordered")
        record_id = record["id"]

        def provisioned() -> list[dict[str, Any]]:
            return [
                r
                for r in resources_of(cluster.handle.kubeconfig, NAMESPACE, record_id)
                if names.OPERATOR_FINALIZER in (r["metadata"].get("finalizers") or [])
                and ((r.get("status") or {}).get("provisionJob") or {}).get("state") == "Succeeded"
            ]

        (resource,) = await until(
            lambda: asyncio.to_thread(provisioned),
            bool,
            within=WITHIN,
            what="the operator's provisioned resource",
        )
        name = resource["metadata"]["name"]

        status, body = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
        assert status == 200, body
        await until(
            lambda: tenant.call("GET", f"{PUBLIC}/{record_id}"),
            lambda answer: answer[0] == 404,
            within=WITHIN,
            what="the record archived (404)",
        )
        # By the time the record went, the resource was gone, through a deprovision job.
        assert resources_of(cluster.handle.kubeconfig, NAMESPACE, record_id) == []
        assert [j["status"] for j in deprovisions(automation, name)] == ["successful"]
    finally:
        controller.stop()
        print(controller.log()[-4000:])
        await admin.close()
        await tenant.close()
