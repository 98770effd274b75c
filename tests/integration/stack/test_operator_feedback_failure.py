"""A provisioning job that fails reaches the tenant: its order's record says FAILED, with the
job's own message (what AAP said) in the PROVISIONED condition, as the resource says it.

Its own stack: the automation service's templates are simulated with the outcome `failed`
(every job fails with AWX's job explanation), which no other test of the feedback wants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.feedback import STATE, Orders, condition, open_orders
from tests.harness.stack_lab import open_lab, phase
from tests.waiting import until

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
]

WITHIN = 120.0
FAILURE = "Simulated job failed (outcome: failed)"
"""The job explanation of the automation service's failed simulated jobs."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def orders(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Orders]:
    state = tmp_path_factory.mktemp("feedback-failure") / "stack"
    simulated = {"run_seconds": 0.5, "outcome": "failed"}
    async with (
        open_lab(state, vm_boot_seconds=1.0, simulated_jobs=simulated) as lab,
        open_orders(lab, tmp_path_factory.mktemp("controller")) as opened,
    ):
        yield opened


async def test_a_failed_job_reaches_the_tenant_with_its_message(orders: Orders) -> None:
    tenant = orders.tenant("feedback-failed")
    record = await tenant.create("broken")
    record_id = record["id"]

    async def failed() -> dict[str, Any] | None:
        found = await orders.resource(record_id)
        return found if phase(found) == "Failed" else None

    resource = await until(failed, bool, within=WITHIN, what="the resource Failed")
    said = next(c for c in resource["status"]["conditions"] if c["type"] == "Progressing")
    assert FAILURE in said["message"], said
    _, seen = await until(
        lambda: orders.record(tenant, record_id),
        lambda answer: answer[0] == 200 and answer[1]["status"].get("state") == STATE + "FAILED",
        within=WITHIN,
        what="FAILED in the tenant's view",
    )
    provisioned = condition(seen, "PROVISIONED")
    assert provisioned["status"] == "CONDITION_STATUS_FALSE", seen
    assert provisioned["reason"] == "ProvisioningFailed", seen
    assert FAILURE in provisioned["message"], seen
    assert provisioned["message"].startswith("Provisioning job "), seen
    assert seen["status"].get("state_transition_time"), seen
