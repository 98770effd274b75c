"""What `cloudkit up` shows of the tenants' orders: each order (id, tenant, state) beside the
ComputeInstance made of it and that instance's jobs, shown again whenever any of it changes.

The rows are computed by `order_rows` (pure) from the records, as an admin of the fulfillment
API sees them (the controller's account: every tenant), and the instances of the watched
namespace, matched by the label the controller puts on each instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.fulfillment.client import ApiError, FulfillmentClient
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path

log = logging.getLogger("cloudkit.local.stack")

Object = dict[str, Any]
REFRESH_S = 2.0
"""How often the view is read again (it is shown only when it changed)."""
STATE_PREFIX = "COMPUTE_INSTANCE_STATE_"


@dataclass(frozen=True)
class OrderRow:
    id: str
    name: str
    tenant: str
    state: str
    """Short (RUNNING for COMPUTE_INSTANCE_STATE_RUNNING), marked once the order is deleted."""
    instance: str
    phase: str
    provision_job: str
    deprovision_job: str


def _job(status: Object, key: str) -> str:
    job = status.get(key) or {}
    if not isinstance(job, dict) or not job:
        return "-"
    return f"#{job.get('id') or '?'} {job.get('state') or ''}".strip()


def order_rows(records: Sequence[Object], instances: Sequence[Object]) -> list[OrderRow]:
    """One row per record, oldest first, with the instance labelled with its id (if any)."""
    by_order: dict[str, Object] = {}
    for instance in instances:
        labels = (instance.get("metadata") or {}).get("labels") or {}
        if names.INSTANCE_UUID_LABEL in labels:
            by_order[str(labels[names.INSTANCE_UUID_LABEL])] = instance
    rows = []
    for record in records:
        meta, status = record.get("metadata") or {}, record.get("status") or {}
        state = str(status.get("state") or "").removeprefix(STATE_PREFIX) or "-"
        if meta.get("deletion_timestamp") and state != "DELETING":
            state += " (deleted)"  # the deletion has not reached the instance yet
        instance = by_order.get(str(record.get("id")), {})
        instance_status = instance.get("status") or {}
        rows.append(
            OrderRow(
                id=str(record.get("id")),
                name=str(meta.get("name") or ""),
                tenant=str(meta.get("tenant") or ""),
                state=state,
                instance=str((instance.get("metadata") or {}).get("name") or "-"),
                phase=str(instance_status.get("phase") or "-"),
                provision_job=_job(instance_status, "provisionJob"),
                deprovision_job=_job(instance_status, "deprovisionJob"),
            )
        )
    return rows


async def follow_orders(
    *,
    address: str,
    ca_file: Path,
    token_file: Path,
    kubeconfig: Path,
    namespace: str,
    show: Callable[[list[OrderRow]], None],
    refresh_s: float = REFRESH_S,
) -> None:
    """Forever: read both views, `show` the rows when they changed. A read that fails is
    logged once and retried (the stack's supervisor says why a child died)."""
    shown: list[OrderRow] | None = None
    failing = False
    instances_path = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=namespace)
    async with (
        FulfillmentClient(
            address, lambda: token_file.read_text().strip(), ca_file=ca_file, private=True
        ) as api,
        KubeClient.from_kubeconfig(kubeconfig) as kube,
    ):
        while True:
            try:
                records = await api.list_all()
                instances = (await kube.list_objects(instances_path)).get("items") or []
                failing = False
            except (ApiError, KubeError, aiohttp.ClientError, OSError, TimeoutError) as error:
                if not failing:
                    log.warning("orders view: %s", error or type(error).__name__)
                failing = True
            else:
                rows = order_rows(records, instances)
                if rows != shown and (rows or shown):
                    show(rows)
                    shown = rows
            await asyncio.sleep(refresh_s)
