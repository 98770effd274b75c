"""One record, reconciled: read it, observe its hub, `decide`, act, and again until in order.

A step that wrote something is followed by a fresh read, so every decision starts from the
record and resource as they are (a record write is guarded by the version it was read at; a
Conflict only means "read again"). Failures that retrying cannot cure (the record's data or this
controller's configuration: `Refused`, or a hub answering 4xx) are written to the record as
state FAILED with condition PROVISIONED False, reason ReconciliationFailed; transient ones (an
API that does not answer, 5xx, 409, 429) are raised to the work queue, which retries with
back-off and leaves the record's state alone (no transient FAILED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cloudkit.fulfillment.client import Conflict, FulfillmentClient, NotFound, Object
from cloudkit.fulfillment.controller.decision import (
    FINALIZER,
    Action,
    CreateResource,
    CreateSecret,
    Decision,
    DeleteResource,
    Observation,
    PatchResource,
    Refused,
    WriteRecord,
    decide,
    failed,
)
from cloudkit.fulfillment.controller.hubs import Hub, HubKubeconfigs
from cloudkit.fulfillment.controller.kube import HubClient
from cloudkit.fulfillment.controller.resource_spec import user_data_secret_name
from cloudkit.operator.kube import KubeError

log = logging.getLogger("cloudkit.fulfillment.controller")

MAX_STEPS = 8
"""Steps of one reconcile before it yields its worker (and asks to run again at once)."""
TRANSIENT_STATUSES = frozenset({404, 408, 409, 429})


def permanent(error: KubeError) -> bool:
    """A hub's answer that a retry will not change: its 4xx but conflicts, throttling, gone."""
    return (
        error.status is not None
        and 400 <= error.status < 500
        and (error.status not in TRANSIENT_STATUSES)
    )


class RecordReconciler:
    """Reconciles records by id over one private API client and the hubs' kubeconfigs."""

    def __init__(
        self,
        api: FulfillmentClient,
        kubeconfigs: HubKubeconfigs,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._kubeconfigs = kubeconfigs
        self._clock = clock
        self._hub_clients: dict[Path, HubClient] = {}

    async def close(self) -> None:
        for hub_client in self._hub_clients.values():
            await hub_client.close()
        self._hub_clients.clear()

    async def reconcile(self, record_id: str) -> float | None:
        """Seconds until the record wants another look (None: on its next event)."""
        for _ in range(MAX_STEPS):
            try:
                record = await self._api.get(record_id)
            except NotFound:
                log.info("record %s: gone", record_id)
                return None
            try:
                decision, hub = await self._step(record)
            except Refused as refused:
                decision, hub = failed(record, str(refused), self._clock()), None
            if decision.failure is not None:
                log.warning("record %s: failed: %s", record_id, decision.failure)
            if not decision.actions:
                log.info("record %s: in order", record_id)
                return decision.requeue_after
            try:
                await self._execute(record, hub, decision.actions)
            except Conflict:
                continue  # the record moved on since it was read: read it again
            except KubeError as error:
                if not permanent(error):
                    raise
                decision = failed(record, str(error), self._clock())
                await self._execute(record, hub, decision.actions)
                log.warning("record %s: failed: %s", record_id, error)
                raise  # the work queue retries it with back-off (the cause may be fixed)
            if decision.requeue_after is not None:
                return decision.requeue_after
        return 0.0

    async def _step(self, record: Object) -> tuple[Decision, HubClient | None]:
        observation, hub = await self._observe(record)
        return decide(record, observation), hub

    async def _observe(self, record: Object) -> tuple[Observation, HubClient | None]:
        now = self._clock()
        hub_id = (record.get("status") or {}).get("hub")
        if not hub_id:
            if (record.get("metadata") or {}).get("deletion_timestamp"):
                return Observation(now), None
            hubs = self._kubeconfigs.usable(await self._api.list_all("hubs"))
            return Observation(now, usable_hubs=tuple(h.id for h in hubs)), None
        try:
            hub = self._kubeconfigs.hub(await self._api.get(str(hub_id), "hubs"))
        except NotFound:
            return Observation(now, hub_gone=True), None
        hub_client = await self._client(hub)
        resource = await hub_client.find_resource(hub.namespace, str(record["id"]))
        secret = None
        if resource is not None and (record.get("spec") or {}).get("user_data"):
            secret = await hub_client.get_secret(hub.namespace, user_data_secret_name(record["id"]))
        observation = Observation(
            now, hub_namespace=hub.namespace, resource=resource, user_data_secret=secret
        )
        return observation, hub_client

    async def _client(self, hub: Hub) -> HubClient:
        found = self._hub_clients.get(hub.kubeconfig)
        if found is None:
            found = await HubClient.connect(hub.kubeconfig)
            self._hub_clients[hub.kubeconfig] = found
        return found

    async def _execute(
        self, record: Object, hub: HubClient | None, actions: tuple[Action, ...]
    ) -> None:
        record_id = str(record["id"])
        for action in actions:
            if isinstance(action, WriteRecord):
                await self._write(record, action)
                continue
            assert hub is not None, "a resource action always comes with its hub"
            if isinstance(action, CreateResource):
                created = await hub.create_resource(action.body)
                log.info("record %s: created ComputeInstance %s", record_id, _name(created))
            elif isinstance(action, PatchResource):
                await hub.patch_resource(action.namespace, action.name, action.patch)
                log.info("record %s: patched ComputeInstance %s", record_id, action.name)
            elif isinstance(action, DeleteResource):
                await hub.delete_resource(action.namespace, action.name)
                log.info("record %s: deleting ComputeInstance %s", record_id, action.name)
            elif isinstance(action, CreateSecret):
                await hub.create_secret(action.body)
                log.info("record %s: created Secret %s", record_id, _name(action.body))

    async def _write(self, record: Object, action: WriteRecord) -> None:
        body = {
            "metadata": {
                "version": (record.get("metadata") or {}).get("version"),
                "finalizers": list(action.finalizers),
            },
            "status": action.status,
        }
        await self._api.update(
            str(record["id"]),
            body,
            update_mask=["metadata.finalizers", "status"],
            lock=True,
        )
        released = FINALIZER not in action.finalizers
        log.info(
            "record %s: %s",
            record["id"],
            "finalizer removed" if released else f"status {action.status.get('state')}",
        )


def _name(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
