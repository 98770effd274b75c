"""A scenario's tenant: orders created, read and deleted through the fulfillment API.

With `--via fulfillment` a scenario acts as upstream's end-to-end tests do, through the API
only (the fulfillment controller makes the ComputeInstance, the operator's feedback writes its
status back to the record), and still watches the resource on the cluster to validate its
trail. Calls go through the project's own API client (`cloudkit.fulfillment.client`, as the
`cloudkit` CLI does); the scenarios run in threads, so each call is one short event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cloudkit.fulfillment.client import FulfillmentClient, NotFound, Object, TokenSource

T = TypeVar("T")

STATE_PREFIX = "COMPUTE_INSTANCE_STATE_"
# The resource's phase the tenant's state stands for, where the scenarios compare the two.
# The operator's feedback writes the state from its own table (operator/feedback.py); this one
# is the documented expectation, kept apart on purpose: a check must not share the code it checks.
STATE_OF_PHASE = {
    "Progressing": "STARTING",
    "Ready": "RUNNING",
    "Failed": "FAILED",
    "Deleting": "DELETING",
}


@dataclass(frozen=True)
class TenantAccess:
    """How a scenario reaches the API as a tenant."""

    address: str
    ca_file: Path | None
    token: TokenSource
    tenant: str


def short_state(record: Object | None) -> str:
    """`RUNNING` for COMPUTE_INSTANCE_STATE_RUNNING; "" for a record without a state."""
    state = str(((record or {}).get("status") or {}).get("state") or "")
    return state.removeprefix(STATE_PREFIX)


class Orders:
    """One tenant's orders (records of compute instances), each call synchronous."""

    def __init__(self, access: TenantAccess) -> None:
        self.access = access

    def _run(self, call: Callable[[FulfillmentClient], Awaitable[T]]) -> T:
        async def once() -> T:
            async with FulfillmentClient(
                self.access.address, self.access.token, ca_file=self.access.ca_file
            ) as api:
                return await call(api)

        return asyncio.run(once())

    def create(self, name: str, spec: dict[str, Any]) -> Object:
        """The created record (with its `id`)."""
        body = {"metadata": {"name": name}, "spec": spec}
        return self._run(lambda api: api.create(body))

    def get(self, record_id: str) -> Object | None:
        """The record as the tenant sees it; None once it is gone (404)."""

        async def read(api: FulfillmentClient) -> Object | None:
            try:
                return await api.get(record_id)
            except NotFound:
                return None

        return self._run(read)

    def delete(self, record_id: str) -> None:
        self._run(lambda api: api.delete(record_id))

    def request_restart(self, record_id: str, at: datetime) -> None:
        """Set the order's `spec.restart_requested_at` (only that field: the mask names it),
        as a tenant asks for a restart; the same request again changes nothing."""
        body = {"spec": {"restart_requested_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}}
        mask = ["spec.restart_requested_at"]
        self._run(lambda api: api.update(record_id, body, update_mask=mask))
