"""Orders through the fulfillment API while its service, its controller or the operator is
killed (SIGKILL) mid-provision and again mid-deletion, and started again, as upstream tests
restarts: every order ends as it should, with no duplicate job, no orphan VM and no record left
in DELETING.

One stack for the module (`open_lab`: API server, simulated AAP jobs, VM simulator, operator;
each test its own orders, and every part it kills is running again when it ends); the
fulfillment service (with its issuer) and its controller are processes of the test harness,
which kills and starts them again itself. What each order must end as, without the
operator's feedback to the record: its resource created once and provisioned (provision job
Succeeded, phase Ready) while the record lives; after the tenant's delete, exactly one
successful deprovision job, the resource gone, no VM left, and the record archived (404, so not
stuck in DELETING). The automation service, which outlives every kill, is the second witness.
`make test` kills each part once per stage; `make soak` does it for several orders at once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cloudkit.api import names
from tests.harness.checks import (
    all_jobs_terminal,
    exactly_one_deprovision_job,
    failures,
    one_provision_job_per_correlation_id,
    trace_lines,
)
from tests.harness.fulfillment import (
    ADMIN,
    HUBS,
    PUBLIC,
    FulfillmentService,
    Issuer,
    Tenant,
    service_account_token,
)
from tests.harness.fulfillment_controller import ControllerProcess, resources_of
from tests.harness.stack_lab import NAMESPACE, Lab, describe, job_of, open_lab, phase
from tests.waiting import until

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(900),
    pytest.mark.asyncio(loop_scope="module"),
]

SIMULATED_JOBS = {"run_seconds": 6}
"""Long enough that a kill lands while a job runs; no Ansible (the playbook is not the subject)."""
VM_BOOT_SECONDS = 1.0
WITHIN = 240.0
HUB_REF = "local"
PARTS = ("service", "controller", "operator")


@dataclass
class OrderLab:
    lab: Lab
    service: FulfillmentService
    controller: ControllerProcess
    admin: Tenant
    tenant: Tenant
    kills: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One kill at a time: orders of the soak reach their stages together."""

    def resources(self, record_id: str) -> list[dict[str, Any]]:
        return resources_of(self.lab.handle.kubeconfig, NAMESPACE, record_id)

    async def resource_name(self, record_id: str) -> str:
        found = await until(
            lambda: asyncio.to_thread(self.resources, record_id),
            bool,
            within=WITHIN,
            what=f"the ComputeInstance of order {record_id}",
        )
        return str(found[0]["metadata"]["name"])

    async def kill_and_restart(self, part: str) -> None:
        """SIGKILL `part` (no shutdown code runs), then start it again as it was started."""
        async with self.kills:
            await self._kill_and_restart(part)

    async def _kill_and_restart(self, part: str) -> None:
        if part == "service":
            await self.service.restart()  # kill -9, same port, same database
        elif part == "controller":
            assert self.controller.process is not None
            self.controller.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.controller.process.wait)
            self.controller.start()  # the same identity: it takes its own Lease back
        else:
            await self.lab.kill("operator", signal.SIGKILL)
            await self.lab.restart_operator()

    async def record_status(self, record_id: str) -> int:
        status, _ = await self.tenant.call("GET", f"{PUBLIC}/{record_id}")
        return status


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def orders(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OrderLab]:
    tmp_path = tmp_path_factory.mktemp("orders")
    async with open_lab(
        tmp_path / "stack",
        vm_boot_seconds=VM_BOOT_SECONDS,
        simulated_jobs=SIMULATED_JOBS,
        with_fulfillment=False,
    ) as lab:
        kubeconfig = lab.handle.kubeconfig
        issuer = Issuer(tmp_path / "issuer")
        await issuer.start()
        service = FulfillmentService(
            tmp_path / "fulfillment",
            issuer,
            extra_args=("--kubeconfig", str(kubeconfig), "--admin", ADMIN),
        )
        token = await asyncio.to_thread(service_account_token, kubeconfig, ADMIN)
        controller = ControllerProcess(
            tmp_path / "controller",
            service,
            token,
            kubeconfig,
            lease_namespace=NAMESPACE,
            identity="controller",
        )
        admin = tenant = None
        try:
            await service.start()
            admin = Tenant(ADMIN, service.session(token))
            tenant = service.tenant("restarts")
            # The service checks the admin's token with the API server: once it answers a read,
            # the one create goes out (a create retried could make two hubs).
            await until(
                lambda: admin.call("GET", HUBS),
                lambda answer: answer[0] == 200,
                within=WITHIN,
                what="the service accepting the controller's account",
            )
            hub = {"spec": {"kubeconfig_ref": HUB_REF, "namespace": NAMESPACE}}
            status, body = await admin.call("POST", HUBS, json=hub)
            assert status == 200, body
            controller.give_hub(HUB_REF)
            controller.start()
            yield OrderLab(lab, service, controller, admin, tenant)
        finally:
            controller.stop()
            print(f"\n--- controller log (tail) ---\n{controller.log()[-3000:]}")
            if service.log_path.exists():
                print(f"\n--- service log (tail) ---\n{service.log_path.read_text()[-3000:]}")
            for client in (admin, tenant):
                if client is not None:
                    await client.close()
            service.stop()
            issuer.stop()


def _job_running(lab: Lab, name: str, kind: str) -> Callable[[], bool]:
    def check() -> bool:
        job = job_of(lab.recorder.latest(name), kind)
        return bool(job.get("id")) and job.get("state") == "Running"

    return check


async def order_with_kills(orders: OrderLab, part: str, label: str) -> list[str]:
    """One order: `part` killed while its provision job runs and while its deprovision job
    runs; what went wrong with it (nothing, when it ended as it should)."""
    lab = orders.lab
    record = await orders.tenant.create(label)
    record_id = str(record["id"])
    name = await orders.resource_name(record_id)
    await lab.recorder.wait_for(
        _job_running(lab, name, "provision"), within=WITHIN, what=f"{name} provisioning"
    )
    await orders.kill_and_restart(part)  # mid-provision
    await lab.recorder.wait_for(
        lambda: (
            phase(lab.recorder.latest(name)) == "Ready"
            and job_of(lab.recorder.latest(name), "provision").get("state") == "Succeeded"
        ),
        within=WITHIN,
        what=f"{name} Ready after the {part} was killed mid-provision",
    )
    alive = await orders.record_status(record_id)
    status, body = await orders.tenant.call("DELETE", f"{PUBLIC}/{record_id}")
    assert status == 200, body
    await lab.recorder.wait_for(
        _job_running(lab, name, "deprovision"), within=WITHIN, what=f"{name} deprovisioning"
    )
    await orders.kill_and_restart(part)  # mid-deletion
    await until(
        lambda: orders.record_status(record_id),
        lambda answer: answer == 404,
        within=WITHIN,
        what=f"order {record_id} archived after the {part} was killed mid-deletion",
    )
    problems = [] if alive == 200 else [f"the record answered {alive} before its deletion"]
    return problems + await witnesses(orders, record_id, name)


async def witnesses(orders: OrderLab, record_id: str, name: str) -> list[str]:
    """The cluster's and the automation service's account of one finished order."""
    lab = orders.lab
    jobs = await lab.automation.jobs_of(name)
    named = {
        name: [
            one_provision_job_per_correlation_id(jobs),
            exactly_one_deprovision_job(jobs),
            all_jobs_terminal(jobs),
        ]
    }
    problems = failures(named)
    created = [
        n for n, versions in lab.recorder.versions.items() if _of_record(versions, record_id)
    ]
    if created != [name]:
        problems.append(f"order {record_id}: resources created {created}, expected [{name}]")
    if left := await asyncio.to_thread(orders.resources, record_id):
        problems.append(f"order {record_id}: resources left {[describe(r) for r in left]}")
    if vms := await lab.vms(name):
        problems.append(f"order {record_id}: orphan VMs {vms}")
    if problems:
        problems += trace_lines(lab.recorder.versions.get(name, []))
    return problems


def _of_record(versions: list[dict[str, Any]], record_id: str) -> bool:
    labels = (versions[0].get("metadata") or {}).get("labels") or {} if versions else {}
    return labels.get(names.INSTANCE_UUID_LABEL) == record_id


async def _gathered(jobs: list[Awaitable[list[str]]]) -> list[str]:
    return [problem for found in await asyncio.gather(*jobs) for problem in found]


@pytest.mark.parametrize("part", PARTS)
async def test_an_order_ends_as_it_should_when_a_part_is_killed_at_each_stage(
    orders: OrderLab, part: str
) -> None:
    problems = await order_with_kills(orders, part, f"killed-{part}")
    assert not problems, "\n".join(problems)


@pytest.mark.soak
@pytest.mark.parametrize("part", PARTS)
async def test_many_orders_end_as_they_should_while_a_part_is_killed_again_and_again(
    orders: OrderLab, part: str
) -> None:
    """Four orders at once; each kills the part at both of its stages, so the kills of one
    order land in the stages of the others too."""
    problems = await _gathered(
        [order_with_kills(orders, part, f"soak-{part}-{i}") for i in range(4)]
    )
    assert not problems, "\n".join(problems)
