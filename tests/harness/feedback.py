"""The tenant's side of a started stack (`stack_lab.open_lab`) for the operator's feedback tests:
tenants of the stack's fulfillment service, its hub, and the controller that turns their orders
into ComputeInstances; plus what a tenant sees of a record over time (its event stream).

The stack's own fulfillment controller is used when it runs one (the child `controller`, with
its hub registered); otherwise one is started here (the harness's `ControllerProcess`) with the
operator's ServiceAccount token, an admin account of the stack's service, and the stack's admin
kubeconfig for the hub and the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.local.stack.kube import KubeAccess
from tests.harness.fulfillment import EVENTS, HUBS, PUBLIC, FulfillmentService, Issuer, Tenant
from tests.harness.fulfillment_controller import ControllerProcess
from tests.harness.stack_lab import INSTANCES, NAMESPACE, Lab

STATE = "COMPUTE_INSTANCE_STATE_"
CONDITION = "COMPUTE_INSTANCE_CONDITION_TYPE_"


def service_of(lab: Lab) -> FulfillmentService:
    """The stack's fulfillment service, as the harness's clients address it."""
    assert lab.handle.fulfillment_url, (
        "the lab runs no fulfillment service: open_lab(with_fulfillment=True)"
    )
    state_dir = lab.handle.state_dir
    service = FulfillmentService(state_dir / "fulfillment", Issuer(state_dir / "issuer"))
    service.url = lab.handle.fulfillment_url
    return service


def operator_token(lab: Lab) -> str:
    return KubeAccess.from_kubeconfig(lab.operator_kubeconfig()).token


@dataclass
class Orders:
    """Tenants, the admin, and the controller of one stack."""

    lab: Lab
    service: FulfillmentService
    admin: Tenant
    controller: ControllerProcess | None
    """The controller started here; None: the stack's own (its child `controller`)."""
    tenants: list[Tenant] = field(default_factory=list)

    def tenant(self, prefix: str) -> Tenant:
        tenant = self.service.tenant(prefix)
        self.tenants.append(tenant)
        return tenant

    def pause(self, pid: int) -> None:
        """SIGSTOP: the process keeps its sockets and answers nothing (a black hole)."""
        os.kill(pid, signal.SIGSTOP)

    def resume(self, pid: int) -> None:
        os.kill(pid, signal.SIGCONT)

    @property
    def service_pid(self) -> int:
        return self.lab.child("fulfillment").pid

    @property
    def controller_pid(self) -> int:
        if self.controller is None:
            return self.lab.child("controller").pid
        assert self.controller.process is not None
        return self.controller.process.pid

    async def record(self, tenant: Tenant, record_id: str) -> tuple[int, Any]:
        return await tenant.call("GET", f"{PUBLIC}/{record_id}")

    async def resource(self, record_id: str) -> dict[str, Any] | None:
        listed = await self.lab.kube.list_objects(
            INSTANCES, labelSelector=f"{names.INSTANCE_UUID_LABEL}={record_id}"
        )
        items = listed.get("items") or []
        return dict(items[0]) if items else None


@contextlib.asynccontextmanager
async def open_orders(lab: Lab, directory: Path) -> AsyncIterator[Orders]:
    service = service_of(lab)
    token = operator_token(lab)
    admin = service.tenant("admin")
    admin.http.headers["Authorization"] = f"Bearer {token}"
    controller = None
    if not getattr(lab.handle, "hub_id", ""):
        controller = ControllerProcess(
            directory,
            service,
            token,
            lab.handle.kubeconfig,
            lease_namespace=NAMESPACE,
            identity="feedback-tests-controller",
        )
    orders = Orders(lab, service, admin, controller)
    try:
        if controller is not None:
            status, hub = await admin.call(
                "POST", HUBS, json={"spec": {"kubeconfig_ref": "local", "namespace": NAMESPACE}}
            )
            assert status == 200, hub
            controller.give_hub("local")
            controller.start()
        yield orders
    finally:
        if controller is not None:
            controller.stop()
        for tenant in [admin, *orders.tenants]:
            await tenant.close()


@dataclass
class Seen:
    """Every version of one record the tenant's event stream delivered, in order."""

    record_id: str
    versions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def states(self) -> list[str]:
        states = [str((r.get("status") or {}).get("state", "")) for _, r in self.versions]
        return [s.removeprefix(STATE) for i, s in enumerate(states) if i == 0 or s != states[i - 1]]

    def deleted(self) -> dict[str, Any] | None:
        return next((r for kind, r in self.versions if kind.endswith("DELETED")), None)


@contextlib.asynccontextmanager
async def following(tenant: Tenant) -> AsyncIterator[dict[str, Seen]]:
    """The tenant's event stream, open and read in the background: record id → what it saw."""
    seen: dict[str, Seen] = {}
    answer = await tenant.http.get(EVENTS, timeout=aiohttp.ClientTimeout(total=None))
    assert answer.status == 200, await answer.text()

    async def read() -> None:
        while line := await answer.content.readline():
            event = json.loads(line)
            record = event["compute_instance"]
            seen.setdefault(record["id"], Seen(record["id"])).versions.append(
                (event["type"], record)
            )

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await task
        answer.close()


def condition(record: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in (record.get("status") or {}).get("conditions") or []:
        if found.get("type") == CONDITION + kind:
            return dict(found)
    return {}
