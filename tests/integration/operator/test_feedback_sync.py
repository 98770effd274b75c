"""The feedback's shell (`operator.feedback_sync.FeedbackSync`) against the real parts: the local
API server (a stack without an operator, one per module; the operator's ServiceAccount and
RBAC) and the fulfillment service
(a process, checking the operator's token by TokenReview, the operator's account an admin).

One pass at a time, driven by the test, so each property is seen at its moment:
- a record written by someone else between the feedback's read and its write is never
  overwritten (the version precondition; a Conflict re-reads);
- a change the record the feedback last wrote already calls for (Ready after Progressing) is
  written without reading the record first, and still never over another writer's change;
- the final state reaches the record before the feedback finalizer goes;
- a record that does not exist drops the finalizer;
- the token file is read again for every call, and never appears in a log line;
- an API that accepts and never answers (a silent relay) costs one timeout, not a hung worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cloudkit.api import names
from cloudkit.fulfillment.client import FulfillmentClient, Kind, Object
from cloudkit.local.stack.faults import FaultRelay, Mode
from cloudkit.local.stack.kube import KubeAccess
from cloudkit.local.stack.operator_account import service_account_username
from cloudkit.operator.cache import Reads
from cloudkit.operator.feedback_sync import FeedbackSync, token_reader
from cloudkit.operator.kube import Kube
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.settings import FeedbackSettings
from tests.harness.feedback import CONDITION, STATE
from tests.harness.fulfillment import FulfillmentService, serving
from tests.harness.operators import Cluster, cluster_without_operator
from tests.harness.stack_lab import NAMESPACE
from tests.waiting import until

pytestmark = pytest.mark.stack

HOLD = "tests.cloudkit.openshift.io/hold"
"""Another controller's finalizer (the operator's, while it deprovisions)."""
RESTART_REQUIRED = {"type": CONDITION + "RESTART_REQUIRED", "status": "CONDITION_STATUS_TRUE"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster_without_operator(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(scope="module")
def fulfillment(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FulfillmentService]:
    with serving(
        tmp_path_factory.mktemp("fulfillment"),
        cluster.kubeconfig,
        service_account_username(),
    ) as service:
        yield service


class Feedback:
    """A FeedbackSync as the operator builds it, the operator's identity on both sides."""

    def __init__(self, cluster: Cluster, service: FulfillmentService, directory: Path) -> None:
        self.cluster = cluster
        self.token = KubeAccess.from_kubeconfig(cluster.operator_kubeconfig).token
        self.token_file = directory / "token"
        self.token_file.write_text(self.token)
        self.settings = FeedbackSettings(
            address=service.url,
            token_file=self.token_file,
            ca_bundle=service.ca_file,
            timeout=timedelta(seconds=2),
            retry_backoff_max=timedelta(seconds=4),
        )
        self.admin = FulfillmentClient(
            service.url, lambda: self.token, ca_file=service.ca_file, private=True
        )

    async def sync(
        self, api: FulfillmentClient | None = None, on_request: Any = None
    ) -> FeedbackSync:
        kube = await Kube.connect(self.cluster.operator_kubeconfig, on_request)
        client = api or FulfillmentClient(
            self.settings.address,
            token_reader(self.token_file),
            ca_file=self.settings.ca_bundle,
            private=True,
            timeout_s=self.settings.timeout.total_seconds(),
        )
        return FeedbackSync(kube, Reads(kube), client, self.settings)

    async def order(self) -> Object:
        """A record as the controller leaves it: its finalizer, STARTING, placed."""
        created = await self.admin.create(
            {"metadata": {"name": "ordered", "tenant": "acme"}, "spec": {"template": "small"}}
        )
        placed = {
            "metadata": {"finalizers": ["fulfillment-controller"]},
            "status": {"state": STATE + "STARTING", "hub": "h-1"},
        }
        return await self.admin.update(
            created["id"], placed, update_mask=["metadata.finalizers", "status"]
        )

    def resource(
        self, name: str, record_id: str, phase: str = "Ready", finalizers: list[str] | None = None
    ) -> dict[str, Any]:
        """A labelled ComputeInstance whose status says `phase` (written as the operator does)."""
        custom: Any = self.cluster.custom
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {
                "name": name,
                "labels": {names.INSTANCE_UUID_LABEL: record_id},
                "finalizers": finalizers or [],
            },
            "spec": {"templateID": "tests_vm"},
        }
        created = custom.create_namespaced_custom_object(
            names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, body
        )
        created["status"] = {"phase": phase, "ipAddress": "10.1.2.3"}
        return dict(
            custom.replace_namespaced_custom_object_status(
                names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name, created
            )
        )

    def set_phase(self, name: str, phase: str) -> None:
        custom: Any = self.cluster.custom
        current = custom.get_namespaced_custom_object(
            names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name
        )
        current["status"] = {**current.get("status", {}), "phase": phase}
        custom.replace_namespaced_custom_object_status(
            names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name, current
        )

    def set_finalizers(self, name: str, finalizers: list[str]) -> None:
        custom: Any = self.cluster.custom
        custom.patch_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            NAMESPACE,
            names.PLURAL,
            name,
            {"metadata": {"finalizers": finalizers}},
        )

    async def close(self) -> None:
        await self.admin.close()


@pytest_asyncio.fixture
async def feedback(
    cluster: Cluster, fulfillment: FulfillmentService, tmp_path: Path
) -> AsyncIterator[Feedback]:
    opened = Feedback(cluster, fulfillment, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


class Interleaved(FulfillmentClient):
    """The real client, with another writer's update landing between the feedback's read of
    the record and its first write (the interleaving a precondition exists for)."""

    def __init__(self, other: FulfillmentClient, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._other = other
        self.interleaved = False

    async def update(
        self, id: str, obj: Object, kind: Kind = "compute_instances", **kw: Any
    ) -> Object:
        if not self.interleaved:
            self.interleaved = True
            current = await self._other.get(id)
            current["status"]["conditions"] = [RESTART_REQUIRED]
            await self._other.update(id, current, update_mask=["status.conditions"], lock=True)
        return await super().update(id, obj, kind, **kw)


class Counted(FulfillmentClient):
    """The real client, counting its reads of records."""

    reads = 0

    async def get(self, id: str, kind: Kind = "compute_instances") -> Object:
        self.reads += 1
        return await super().get(id, kind)


def conditions(record: Object) -> list[dict[str, Any]]:
    return list((record.get("status") or {}).get("conditions") or [])


def provisioned(record: Object) -> dict[str, Any]:
    (found,) = [c for c in conditions(record) if c["type"] == CONDITION + "PROVISIONED"]
    return found


async def test_a_write_between_read_and_write_is_never_overwritten(feedback: Feedback) -> None:
    record = await feedback.order()
    feedback.resource("fb-conflict", record["id"])
    api = Interleaved(
        feedback.admin,
        feedback.settings.address,
        token_reader(feedback.token_file),
        ca_file=feedback.settings.ca_bundle,
        private=True,
    )
    sync = await feedback.sync(api)
    try:
        key = InstanceKey(NAMESPACE, "fb-conflict")
        assert await sync(key) is not None  # in order; resynced later
    finally:
        await sync.close()
        await sync.kube.close()
    assert api.interleaved
    after = await feedback.admin.get(record["id"])
    assert after["status"]["state"] == STATE + "RUNNING", after
    assert after["status"]["internal_ip_address"] == "10.1.2.3"
    assert RESTART_REQUIRED in conditions(after), "the other writer's condition was lost"


async def test_a_change_the_known_record_calls_for_is_written_without_a_read(
    feedback: Feedback,
) -> None:
    record = await feedback.order()
    feedback.resource("fb-known", record["id"], phase="Progressing")
    api = Counted(
        feedback.settings.address,
        token_reader(feedback.token_file),
        ca_file=feedback.settings.ca_bundle,
        private=True,
    )
    sync = await feedback.sync(api)
    key = InstanceKey(NAMESPACE, "fb-known")
    try:
        await sync(key)  # the finalizer, a read, the conditions written
        reads = api.reads
        feedback.set_phase("fb-known", "Ready")
        await sync(key)
        assert api.reads == reads, "the record was read again before writing RUNNING"
        running = await feedback.admin.get(record["id"])
        assert running["status"]["state"] == STATE + "RUNNING", running
        # Another writer moves the record on: the next change is refused (409), read, kept.
        running["status"]["conditions"] = [*conditions(running), RESTART_REQUIRED]
        await feedback.admin.update(
            record["id"], running, update_mask=["status.conditions"], lock=True
        )
        feedback.set_phase("fb-known", "Failed")
        await sync(key)
        assert api.reads == reads + 1, "the Conflict read the record again"
    finally:
        await sync.close()
        await sync.kube.close()
    after = await feedback.admin.get(record["id"])
    assert after["status"]["state"] == STATE + "FAILED", after
    assert RESTART_REQUIRED in conditions(after), "the other writer's condition was lost"


async def test_the_final_state_is_written_before_the_finalizer_goes(feedback: Feedback) -> None:
    record = await feedback.order()
    feedback.resource("fb-final", record["id"], phase="Deleting", finalizers=[HOLD])
    key = InstanceKey(NAMESPACE, "fb-final")
    requests: list[str] = []
    sync = await feedback.sync(on_request=requests.append)
    try:
        await sync(key)  # adds the feedback finalizer
        feedback.cluster.delete("fb-final")
        await sync(key)  # deleting, still held (the operator's finalizer would deprovision)
        during = await feedback.admin.get(record["id"])
        assert provisioned(during)["reason"] == "Deprovisioning", during
        live = feedback.cluster.get("fb-final")
        assert live is not None
        assert live["metadata"]["finalizers"] == [HOLD, names.FEEDBACK_FINALIZER]
        feedback.set_finalizers("fb-final", [names.FEEDBACK_FINALIZER])  # deprovisioned
        requests.clear()
        assert await sync(key) is None
        # One read of the resource: the finalizer's patch is guarded by its resourceVersion,
        # so the final state needs no second, fresher read before it.
        assert [r.upper() for r in requests] == ["GET", "PATCH"], requests
    finally:
        await sync.close()
        await sync.kube.close()
    assert feedback.cluster.get("fb-final") is None
    final = await feedback.admin.get(record["id"])
    assert final["status"]["state"] == STATE + "DELETING"
    assert provisioned(final)["reason"] == "Deprovisioned", final


async def test_a_missing_record_drops_the_finalizer(feedback: Feedback) -> None:
    feedback.resource("fb-orphan", "no-such-record")
    sync = await feedback.sync()
    try:
        assert await sync(InstanceKey(NAMESPACE, "fb-orphan")) is None
    finally:
        await sync.close()
        await sync.kube.close()
    orphan = feedback.cluster.get("fb-orphan")
    assert orphan is not None
    assert names.FEEDBACK_FINALIZER not in (orphan["metadata"].get("finalizers") or [])


async def test_a_missing_record_is_not_asked_for_a_finalizer_again(feedback: Feedback) -> None:
    """Dropping the finalizer is a change that wakes the instance again: adding it back then
    would drop it again, forever (seen as a pass every few milliseconds)."""
    feedback.resource("fb-orphan-again", "no-such-record")
    key = InstanceKey(NAMESPACE, "fb-orphan-again")
    sync = await feedback.sync()
    try:
        assert await sync(key) is None
        dropped = feedback.cluster.get("fb-orphan-again")
        assert dropped is not None
        for _ in range(3):  # the wake-ups its own writes cause
            assert await sync(key) is None
        after = feedback.cluster.get("fb-orphan-again")
    finally:
        await sync.close()
        await sync.kube.close()
    assert after is not None
    assert after["metadata"]["resourceVersion"] == dropped["metadata"]["resourceVersion"], (
        "the instance was written again although its record is still missing"
    )


async def test_the_token_is_read_for_every_call_and_never_logged(
    feedback: Feedback, caplog: pytest.LogCaptureFixture
) -> None:
    record = await feedback.order()
    feedback.resource("fb-token", record["id"], phase="Progressing")
    key = InstanceKey(NAMESPACE, "fb-token")
    wrong = "not-a-valid-token-6b2f"
    feedback.token_file.write_text(wrong)
    sync = await feedback.sync()
    try:
        with caplog.at_level(logging.INFO, logger="cloudkit.operator.feedback"):
            delay = await sync(key)
        assert delay is not None and delay <= feedback.settings.retry_backoff_max.total_seconds()
        assert "HTTP 401" in caplog.text
        assert (await feedback.admin.get(record["id"]))["status"]["state"] == STATE + "STARTING"
        feedback.token_file.write_text(feedback.token)  # rotated: the next call reads it
        await sync(key)
    finally:
        await sync.close()
        await sync.kube.close()
    after = await feedback.admin.get(record["id"])
    assert after["status"]["state"] == STATE + "STARTING"
    made = [c for c in conditions(after) if c["type"].endswith("CONFIGURATION_APPLIED")]
    assert made, "the write went through with the rotated token"
    assert wrong not in caplog.text and feedback.token not in caplog.text


async def test_a_silent_api_costs_one_timeout_not_a_hung_worker(feedback: Feedback) -> None:
    record = await feedback.order()
    feedback.resource("fb-silent", record["id"])
    host, port = feedback.settings.address.removeprefix("https://").rsplit(":", 1)
    relay = FaultRelay(host, int(port))
    await relay.start()
    await relay.set_mode(Mode.SILENT)
    api = FulfillmentClient(
        f"https://{host}:{relay.port}",
        token_reader(feedback.token_file),
        ca_file=feedback.settings.ca_bundle,
        private=True,
        timeout_s=feedback.settings.timeout.total_seconds(),
    )
    sync = await feedback.sync(api)
    key = InstanceKey(NAMESPACE, "fb-silent")
    try:
        started = time.monotonic()
        delay = await asyncio.wait_for(sync(key), 60)
        took = time.monotonic() - started
        print(f"\none pass against a silent API: {took:.1f}s (timeout 2s), retry in {delay}s")
        assert delay is not None and delay <= feedback.settings.retry_backoff_max.total_seconds()
        await relay.set_mode(Mode.PASS)
        await until(
            lambda: _synced(sync, key, feedback, record["id"]),
            bool,
            within=60,
            what="the record caught up",
            interval=0.5,
        )
    finally:
        await sync.close()
        await sync.kube.close()
        await relay.stop()


async def _synced(sync: FeedbackSync, key: InstanceKey, feedback: Feedback, record_id: str) -> bool:
    await sync(key)
    record = await feedback.admin.get(record_id)
    return bool(record["status"].get("state") == STATE + "RUNNING")
