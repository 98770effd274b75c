"""An order through the fulfillment API, the controller and the operator together: the record's
resource is provisioned by the operator; deleting the record deprovisions it (the operator's
finalizer runs) before the controller lets the record go.

The stack runs all of it (`stack_lab.open_lab` with the fulfillment service, its issuer and its
controller; simulated AAP jobs: the playbook is not the subject); the tenants' side comes from
`harness.feedback`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudkit.api import names
from tests.harness.feedback import open_orders
from tests.harness.fulfillment import PUBLIC
from tests.harness.stack_lab import job_of, open_lab
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

WITHIN = 120


async def test_a_deleted_order_is_deprovisioned_by_the_operator_before_the_record_goes(
    tmp_path: Path,
) -> None:
    async with (
        open_lab(
            tmp_path / "stack",
            vm_boot_seconds=0.5,
            simulated_jobs={"run_seconds": 0.5},
            with_fulfillment=True,
        ) as lab,
        open_orders(lab, tmp_path / "controller") as orders,
    ):
        tenant = orders.tenant("acme")
        record = await tenant.create("ordered")
        record_id = str(record["id"])

        async def provisioned() -> list[str]:
            resource = await orders.resource(record_id)
            finalizers = ((resource or {}).get("metadata") or {}).get("finalizers") or []
            succeeded = job_of(resource, "provision").get("state") == "Succeeded"
            if resource is None or names.OPERATOR_FINALIZER not in finalizers or not succeeded:
                return []
            return [str(resource["metadata"]["name"])]

        (name,) = await until(
            provisioned, bool, within=WITHIN, what="the operator's provisioned resource"
        )

        status, body = await tenant.call("DELETE", f"{PUBLIC}/{record_id}")
        assert status == 200, body
        await until(
            lambda: tenant.call("GET", f"{PUBLIC}/{record_id}"),
            lambda answer: answer[0] == 404,
            within=WITHIN,
            what="the record archived (404)",
        )
        # By the time the record went, the resource was gone, through a deprovision job.
        assert await orders.resource(record_id) is None
        deprovisions = [j for j in await lab.automation.jobs_of(name) if j.kind == "deprovision"]
        assert [j.status for j in deprovisions] == ["successful"]
