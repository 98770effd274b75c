"""One record, reconciled: read it, observe its hub, `decide`, act, and again until in order.

Round trips are the cost of every hop between an order and its resource, so none is made twice:
the record comes from what the event stream last carried (`SeenRecords`; read from the API only
when none was seen), a record write's answer is the record the next step decides on, the hubs
are listed once and again only after a hub event, and a step that created, patched or deleted
the resource goes on with what it knows now instead of observing the hub again. A record write
is guarded by the version it was decided on, so a stale record costs a Conflict, which reads it
afresh; the resource is read from the hub for every decision that starts from scratch.
Failures that retrying cannot cure (the record's data or this
controller's configuration: `Refused`, or a hub answering 4xx) are written to the record as
state FAILED with condition PROVISIONED False, reason ReconciliationFailed; transient ones (an
API that does not answer, 5xx, 409, 429) are raised to the work queue, which retries with
back-off and leaves the record's state alone (no transient FAILED).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cloudkit.fulfillment.client import Conflict, FulfillmentClient, NotFound, Object
from cloudkit.fulfillment.controller.decision import (
    FINALIZER,
    RECHECK_S,
    Action,
    CreateResource,
    CreateSecret,
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
from cloudkit.fulfillment.controller.resource_watch import ResourceWatches
from cloudkit.fulfillment.controller.seen import SeenRecords
from cloudkit.operator.kube import KubeError

log = logging.getLogger("cloudkit.fulfillment.controller")

MAX_STEPS = 8
"""Steps of one reconcile before it yields its worker (and asks to run again at once)."""
TRANSIENT_STATUSES = frozenset({404, 408, 409, 429})

Observed = tuple[Observation, HubClient | None]
"""What a step saw of the record's hub, and the client to act on it with."""


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
        records: SeenRecords | None = None,
        watches: ResourceWatches | None = None,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._kubeconfigs = kubeconfigs
        self.records = records if records is not None else SeenRecords()
        self._watches = watches
        self._recheck_s = recheck_s
        self._clock = clock
        self._hub_clients: dict[Path, HubClient] = {}
        self._hubs: list[Object] | None = None
        """Every hub, as last listed; None: list them on the next need."""

    def hubs_changed(self) -> None:
        """A hub was created, changed or deleted: list them again on the next need."""
        self._hubs = None

    async def close(self) -> None:
        if self._watches is not None:
            await self._watches.close()
        for hub_client in self._hub_clients.values():
            await hub_client.close()
        self._hub_clients.clear()

    async def reconcile(self, record_id: str) -> float | None:
        """Seconds until the record wants another look (None: on its next event)."""
        record = self.records.get(record_id)
        observed: Observed | None = None
        for _ in range(MAX_STEPS):
            if record is None:
                try:
                    record = await self._api.get(record_id)
                except NotFound:
                    self.records.forget(record_id)
                    log.info("record %s: gone", record_id)
                    return None
                self.records.saw(record)
            try:
                if observed is None:
                    observed = await self._observe(record)
                else:
                    observed = (dataclasses.replace(observed[0], now=self._clock()), observed[1])
                decision = decide(record, observed[0])
            except Refused as refused:
                decision, observed = failed(record, str(refused), self._clock()), None
            if decision.failure is not None:
                log.warning("record %s: failed: %s", record_id, decision.failure)
            if not decision.actions:
                log.info("record %s: in order", record_id)
                return decision.requeue_after
            try:
                record, observed = await self._execute(record, observed, decision.actions)
            except Conflict:
                record, observed = None, None  # it moved on since it was read: read it again
                continue
            except KubeError as error:
                if not permanent(error):
                    raise
                decision = failed(record, str(error), self._clock())
                await self._execute(record, None, decision.actions)
                log.warning("record %s: failed: %s", record_id, error)
                raise  # the work queue retries it with back-off (the cause may be fixed)
            if decision.requeue_after is not None:
                return decision.requeue_after
        return 0.0

    async def _hub_list(self, *, fresh: bool = False) -> list[Object]:
        if self._hubs is None or fresh:
            self._hubs = await self._api.list_all("hubs")
        return self._hubs

    async def _hub_record(self, hub_id: str) -> Object | None:
        """The hub named `hub_id` (listed again once if it is not among those listed)."""
        for fresh in (False, True):
            found = next(
                (h for h in await self._hub_list(fresh=fresh) if h.get("id") == hub_id), None
            )
            if found is not None:
                return found
        return None

    async def _observe(self, record: Object) -> Observed:
        observed, hub = await self._look(record)
        return dataclasses.replace(observed, recheck_s=self._recheck_s), hub

    async def _look(self, record: Object) -> Observed:
        now = self._clock()
        hub_id = (record.get("status") or {}).get("hub")
        if not hub_id:
            if (record.get("metadata") or {}).get("deletion_timestamp"):
                return Observation(now), None
            hubs = self._kubeconfigs.usable(await self._hub_list())
            return Observation(now, usable_hubs=tuple(h.id for h in hubs)), None
        hub_record = await self._hub_record(str(hub_id))
        if hub_record is None:
            return Observation(now, hub_gone=True), None
        hub = self._kubeconfigs.hub(hub_record)
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
        if self._watches is not None:
            self._watches.ensure(hub.kubeconfig, hub.namespace, found.api_client)
        return found

    async def _execute(
        self, record: Object, observed: Observed | None, actions: tuple[Action, ...]
    ) -> tuple[Object, Observed | None]:
        """Carry out `actions` in order; the record and what is known of its hub after them
        (None: observe it again)."""
        for action in actions:
            if isinstance(action, WriteRecord):
                placed = (record.get("status") or {}).get("hub")
                record = await self._write(record, action)
                if (record.get("status") or {}).get("hub") != placed:
                    observed = None  # placed on a hub: look at it
                continue
            observation, hub = observed if observed is not None else (None, None)
            assert observation is not None and hub is not None, "a resource action has its hub"
            observed = await self._act(str(record["id"]), observation, hub, action)
        return record, observed

    async def _act(
        self, record_id: str, observation: Observation, hub: HubClient, action: Action
    ) -> Observed | None:
        """One action on the hub; what is known of it after (None: observe it again)."""
        if isinstance(action, CreateResource):
            created = await hub.create_resource(action.body)
            log.info("record %s: created ComputeInstance %s", record_id, _name(created))
            return dataclasses.replace(observation, resource=created), hub
        if isinstance(action, PatchResource):
            patched = await hub.patch_resource(action.namespace, action.name, action.patch)
            log.info("record %s: patched ComputeInstance %s", record_id, action.name)
            if patched is None:
                return None
            return dataclasses.replace(observation, resource=patched), hub
        if isinstance(action, DeleteResource):
            await hub.delete_resource(action.namespace, action.name)
            log.info("record %s: deleting ComputeInstance %s", record_id, action.name)
            return None
        if isinstance(action, CreateSecret):
            await hub.create_secret(action.body)
            log.info("record %s: created Secret %s", record_id, _name(action.body))
            secret = {"metadata": action.body["metadata"]}
            return dataclasses.replace(observation, user_data_secret=secret), hub
        return None

    async def _write(self, record: Object, action: WriteRecord) -> Object:
        """The record as written (the answer: the next step decides on it, unread)."""
        body = {
            "metadata": {
                "version": (record.get("metadata") or {}).get("version"),
                "finalizers": list(action.finalizers),
            },
            "status": action.status,
        }
        written = await self._api.update(
            str(record["id"]),
            body,
            update_mask=["metadata.finalizers", "status"],
            lock=True,
        )
        self.records.saw(written)
        released = FINALIZER not in action.finalizers
        log.info(
            "record %s: %s",
            record["id"],
            "finalizer removed" if released else f"status {action.status.get('state')}",
        )
        return written


def _name(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
