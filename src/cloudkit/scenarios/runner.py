"""End-to-end scenarios against any kubeconfig: drive an instance, record every version, validate.

Uses the kubernetes Python client, the same client a user's tooling would use. Every version of
the instance is recorded from a watch (one event per write), so a validation such as "the
deprovision job never appears before the provision job is terminal" is checked on every write,
not on samples. Every call has a deadline and is retried on an infrastructure error, counted
apart from the product's failures (`infrastructure`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.infrastructure import InfrastructureErrors, RetryBudgetSpent
from cloudkit.scenarios.orders import STATE_OF_PHASE, Orders, short_state
from cloudkit.scenarios.validations import Report, Snapshot
from cloudkit.watching import BlockingFollower, Cursor, follow_blocking

log = logging.getLogger("cloudkit.scenarios")

Object = dict[str, Any]
# What a scenario's tenant orders: the template the local stack's playbooks provision.
ORDER_SPEC: Object = {"template": "cloudkit_templates_ocp_virt_vm", "run_strategy": "Always"}
# How long an EDA provision playbook that outlived its instance may take to remove its VM.
EDA_SETTLE_S = 60.0
REQUEST_TIMEOUT_S = 15.0
"""The deadline of one API call of the scenario (the client has none by default)."""
WATCH_TIMEOUT_S = 5


class ScenarioError(Exception):
    """The scenario could not run (as opposed to a validation failing)."""


class Recorder:
    """Watches one instance in a thread and keeps every version it sees."""

    def __init__(
        self,
        api: client.CustomObjectsApi,
        namespace: str,
        name: str,
        infrastructure: InfrastructureErrors | None = None,
        *,
        label_selector: str | None = None,
    ) -> None:
        """Watches `name`, or with `label_selector` the one instance it selects, whose name
        (`found_name`) is known only once the instance exists (the fulfillment controller
        names it with generateName)."""
        self._api = api
        self._infrastructure = infrastructure or InfrastructureErrors()
        self._namespace = namespace
        self._name = name
        self._label_selector = label_selector
        self.found_name: str | None = None
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.trace: list[Snapshot] = []
        self.deleted = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self.trace)

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self.trace[-1] if self.trace else None

    def _record(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        if self.found_name is None and meta.get("name"):
            self.found_name = str(meta["name"])
        snap = Snapshot(
            at=time.monotonic() - self._start,
            resource_version=str(meta.get("resourceVersion", "")),
            deleting=bool(meta.get("deletionTimestamp")),
            status=dict(obj.get("status") or {}),
            finalizers=tuple(str(f) for f in meta.get("finalizers") or ()),
        )
        with self._lock:
            if not self.trace or self.trace[-1].resource_version != snap.resource_version:
                self.trace.append(snap)

    def _run(self) -> None:
        # Any failure is ridden out (a dropped connection, a truncated line, a client error):
        # a dead recorder would turn into a timeout with no cause.
        cursor = Cursor(
            f"{self._namespace}/{self._name}", transient=(Exception,), on_failure=self._lost
        )
        instance = BlockingFollower(self._list, self._watch, self._see, _event_version)
        follow_blocking(instance, cursor, self._stop)

    def _list(self) -> str | None:
        listed: dict[str, Any] = self._api.list_namespaced_custom_object(  # type: ignore[assignment]
            names.GROUP,
            names.VERSION,
            self._namespace,
            names.PLURAL,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
        )
        for obj in listed.get("items") or []:
            self._record(obj)
        return (listed.get("metadata") or {}).get("resourceVersion") or None

    def _watch(self, resource_version: str | None) -> Iterator[dict[str, Any]]:
        stream: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
            self._api.list_namespaced_custom_object,
            names.GROUP,
            names.VERSION,
            self._namespace,
            names.PLURAL,
            timeout_seconds=WATCH_TIMEOUT_S,
            # A connection that stops answering ends the stream on this side too.
            _request_timeout=WATCH_TIMEOUT_S + REQUEST_TIMEOUT_S,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            resource_version=resource_version,
        )
        return stream

    def _see(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        if event["type"] == "DELETED":
            self._record(obj)
            self.deleted.set()
            self._stop.set()  # nothing more will happen to it
        elif event["type"] in {"ADDED", "MODIFIED"}:
            self._record(obj)

    def _lost(self, error: BaseException) -> None:
        """Each break of the watch is an infrastructure error retried; past the budget, the
        recording goes on (a validation that lacks versions fails on its own) and the run is
        reported as spent."""
        with contextlib.suppress(RetryBudgetSpent):
            self._infrastructure.saw(f"watching {self._name}", error)

    @property
    def _field_selector(self) -> str | None:
        """The one instance by its name, unless it is selected by its label (name unknown)."""
        return None if self._label_selector is not None else f"metadata.name={self._name}"


def _event_version(event: dict[str, Any]) -> str | None:
    return (event["object"].get("metadata") or {}).get("resourceVersion") or None


class Scenario:
    """Shared plumbing: clients, the instance manifest, waiting with deadlines."""

    def __init__(
        self,
        *,
        kubeconfig: str | None,
        namespace: str,
        provider: str,
        orders: Orders | None = None,
    ) -> None:
        """With `orders` the instance is ordered and deleted through the fulfillment API as
        that tenant (`namespace` is then the hub's, where the controller creates it)."""
        api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.provider = provider
        self.name = f"scenario-{uuid.uuid4().hex[:8]}"
        self.infrastructure = InfrastructureErrors()
        self.orders = orders
        self.record_id: str | None = None
        """The order's id (with `orders`), once created."""

    @property
    def via(self) -> str:
        return "fulfillment" if self.orders is not None else "kubernetes"

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {names.INSTANCE_UUID_LABEL: str(uuid.uuid4())},
                "annotations": {names.TENANT_ANNOTATION: "scenario"},
            },
            "spec": {
                "templateID": "cloudkit_templates_ocp_virt_vm",
                "cores": 1,
                "memoryGiB": 1,
                "runStrategy": "Always",
            },
        }

    def create(self) -> Recorder:
        if self.orders is not None:
            return self._order()
        self._ensure_namespace()
        try:
            self.infrastructure.call(
                f"creating {self.name}",
                lambda: self.custom.create_namespaced_custom_object(
                    names.GROUP,
                    names.VERSION,
                    self.namespace,
                    names.PLURAL,
                    self.manifest(),
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            # A retried create whose first attempt landed: the name is ours (uuid-suffixed).
            if exc.status != 409 or not self.infrastructure.retried:
                raise
        recorder = Recorder(self.custom, self.namespace, self.name, self.infrastructure)
        recorder.start()
        return recorder

    def _order(self, timeout: float = 60.0) -> Recorder:
        """The order through the API, then the watch of the ComputeInstance the controller
        makes of it (labelled with the order's id); returns once that exists, named."""
        assert self.orders is not None
        record = self.orders.create(self.name, ORDER_SPEC)
        self.record_id = str(record["id"])
        recorder = Recorder(
            self.custom,
            self.namespace,
            self.name,
            self.infrastructure,
            label_selector=f"{names.INSTANCE_UUID_LABEL}={self.record_id}",
        )
        recorder.start()
        try:
            wait_for(
                lambda: recorder.found_name is not None,
                timeout=timeout,
                what=f"the ComputeInstance of order {self.record_id}",
            )
        except ScenarioError:
            recorder.stop()
            raise
        self.name = str(recorder.found_name)
        return recorder

    def delete(self) -> None:
        if self.orders is not None and self.record_id is not None:
            self.orders.delete(self.record_id)
            return
        try:
            self.infrastructure.call(
                f"deleting {self.name}",
                lambda: self.custom.delete_namespaced_custom_object(
                    names.GROUP,
                    names.VERSION,
                    self.namespace,
                    names.PLURAL,
                    self.name,
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            # A retried delete whose first attempt landed, and the instance went at once.
            if exc.status != 404 or not self.infrastructure.retried:
                raise

    def order(self) -> Object | None:
        """The order as its tenant sees it now (None: gone, or no order)."""
        if self.orders is None or self.record_id is None:
            return None
        return self.orders.get(self.record_id)

    def exists(self) -> bool:
        return self.resource_status() is not None

    def resource_status(self) -> dict[str, Any] | None:
        """The instance's status now; None once it is gone."""
        try:
            found = self.infrastructure.call(
                f"reading {self.name}",
                lambda: self.custom.get_namespaced_custom_object(
                    names.GROUP,
                    names.VERSION,
                    self.namespace,
                    names.PLURAL,
                    self.name,
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict((found if isinstance(found, dict) else {}).get("status") or {})

    def request_restart(self, at: datetime) -> None:
        """Set spec.restartRequestedAt, as a user would (a merge patch of the spec; the same
        patch again is the same request); through the API, the order's
        `restart_requested_at` (the controller patches the resource with it)."""
        if self.orders is not None and self.record_id is not None:
            self.orders.request_restart(self.record_id, at)
            return
        self.infrastructure.call(
            f"requesting a restart of {self.name}",
            lambda: self.custom.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                self.namespace,
                names.PLURAL,
                self.name,
                {"spec": {"restartRequestedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}},
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
        )

    def vm_instance(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachineInstance `namespace/name` (KubeVirt names it as its VM), or None."""
        try:
            found = self.infrastructure.call(
                f"reading VirtualMachineInstance {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    names.KUBEVIRT_GROUP,
                    names.KUBEVIRT_VERSION,
                    namespace,
                    names.VMI_PLURAL,
                    name,
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def labelled_vms(self) -> list[str]:
        try:
            vms = self.infrastructure.call(
                "listing VirtualMachines",
                lambda: self.custom.list_cluster_custom_object(
                    names.KUBEVIRT_GROUP,
                    names.KUBEVIRT_VERSION,
                    names.VM_PLURAL,
                    label_selector=f"{names.VM_INSTANCE_LABEL}={self.name}",
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            if exc.status == 404:  # no KubeVirt at all: no VM can be left behind
                return []
            raise
        items: list[dict[str, Any]] = vms["items"]  # type: ignore[index]
        return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items]

    def _ensure_namespace(self) -> None:
        try:
            self.infrastructure.call(
                f"creating namespace {self.namespace}",
                lambda: self.core.create_namespace(
                    client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)),
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
            )
        except ApiException as exc:
            if exc.status != 409:
                raise


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> float:
    """Wait until predicate() holds; returns the seconds waited; raises ScenarioError on timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise ScenarioError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def _provision_running(rec: Recorder, provider: str) -> bool:
    """A launched provision job that is doing work, the hard case: Running with AAP; with EDA
    (which cannot observe the job) the playbook's first write, the automation finalizer."""
    snap = rec.latest()
    job = snap.job("provision") if snap else None
    if not snap or not job or not job.get("id"):
        return False
    if provider == "aap":
        return job.get("state") == "Running"
    return job.get("state") in v.NON_TERMINAL and names.AUTOMATION_FINALIZER in snap.finalizers


def vms_left(scn: Scenario) -> list[str]:
    """Labelled VMs once clean-up has settled. With AAP the deprovision job waits for them to
    go before the resource is released, so this is immediate. An EDA provision playbook that
    outlived the deletion removes its own VM (see provision.yml): wait for that, bounded."""
    if scn.provider == "eda":
        with contextlib.suppress(ScenarioError):
            wait_for(lambda: not scn.labelled_vms(), timeout=EDA_SETTLE_S, what="VMs removed")
    return scn.labelled_vms()


def _order_state(scn: Scenario, wanted: str, timeout: float) -> tuple[str, float]:
    """Wait (bounded) until the tenant sees its order in state `wanted`; the state last seen
    and the seconds waited (a timeout is a failed validation, not an error)."""
    seen: dict[str, str] = {"state": ""}

    def reached() -> bool:
        seen["state"] = short_state(scn.order())
        return seen["state"] == wanted

    started = time.monotonic()
    with contextlib.suppress(ScenarioError):
        wait_for(reached, timeout=timeout, what=f"order state {wanted}", interval=0.2)
    return seen["state"], time.monotonic() - started


def check_record_gone(scn: Scenario, report: Report, timeout: float) -> None:
    """Through the API: the record answers 404 (archived), and the tenant's view agrees with
    the cluster's (both gone)."""
    started = time.monotonic()
    with contextlib.suppress(ScenarioError):
        wait_for(lambda: scn.order() is None, timeout=timeout, what="record gone", interval=0.2)
    record = scn.order()
    report.timings["resource_gone_to_record_gone_s"] = time.monotonic() - started
    report.validations.append(
        v.record_gone(record is None, report.timings["resource_gone_to_record_gone_s"])
    )
    resource = scn.resource_status()
    report.validations.append(v.tenant_view_agrees(record, resource, STATE_OF_PHASE))


def delete_during_provision(scn: Scenario, *, timeout: float = 180.0) -> Report:
    """Create, wait for a running provision job, delete, and validate the whole trail. Through
    the API (upstream's test): order, state STARTING, delete the order, … record gone (404)."""
    report = Report("delete-during-provision", scn.provider, "", via=scn.via)
    t0 = time.monotonic()
    rec = scn.create()
    report.instance = f"{scn.namespace}/{scn.name}"
    try:
        if scn.orders is not None:
            state, waited = _order_state(scn, "STARTING", 60)
            report.validations.append(v.order_state_seen(state, "STARTING", waited))
        report.timings["provision_job_started_s"] = wait_for(
            lambda: _provision_running(rec, scn.provider),
            timeout=60,
            what="a running provision job",
        )
        before = rec.latest()
        assert before is not None
        scn.delete()
        deleted_at = time.monotonic()
        gone = rec.deleted.wait(timeout) or not scn.exists()
        report.timings["delete_to_gone_s"] = time.monotonic() - deleted_at
        trace = rec.snapshots()
    finally:
        rec.stop()
    report.validations.append(v.only_provision_job_before_delete(before))
    report.validations.append(v.phase_deleting_after_delete(trace))
    if scn.provider == "eda":  # the operator cannot observe nor cancel an EDA job
        report.validations.append(v.provision_succeeded_only_on_playbook_report(trace))
        report.validations.append(v.at_most_one_deprovision_job(trace))
    else:
        report.validations.append(v.provision_terminal_with_matching_message(trace))
        report.validations.append(v.single_deprovision_after_provision_terminal(trace))
    report.validations.append(v.deprovision_job_not_failed(trace))
    report.validations.append(v.deprovision_job_id_unchanged(trace, gone))
    report.validations.append(v.resource_gone(gone, report.timings["delete_to_gone_s"]))
    if scn.orders is not None:
        check_record_gone(scn, report, timeout)
    report.validations.append(v.no_orphan_vm(vms_left(scn), f"{names.VM_INSTANCE_LABEL}"))
    report.timings["total_s"] = time.monotonic() - t0
    return report


def lifecycle(scn: Scenario, *, timeout: float = 180.0) -> Report:
    """Create, wait until Ready with a running VM, delete, and validate the clean-up. Through
    the API: the tenant sees RUNNING with the resource's IP address, then the record goes."""
    report = Report("lifecycle", scn.provider, "", via=scn.via)
    t0 = time.monotonic()
    rec = scn.create()
    report.instance = f"{scn.namespace}/{scn.name}"
    try:

        def ready() -> bool:
            snap = rec.latest()
            return bool(snap and snap.status.get("phase") == "Ready")

        report.timings["create_to_ready_s"] = wait_for(ready, timeout=timeout, what="phase Ready")
        ready_snap = rec.latest()
        assert ready_snap is not None
        if scn.orders is not None:
            state, waited = _order_state(scn, "RUNNING", timeout)
            report.timings["ready_to_order_running_s"] = waited
            report.validations.append(v.order_state_seen(state, "RUNNING", waited))
            report.validations.append(
                v.tenant_view_agrees(
                    scn.order(), scn.resource_status(), STATE_OF_PHASE, when="at-ready"
                )
            )
        scn.delete()
        deleted_at = time.monotonic()
        gone = rec.deleted.wait(timeout) or not scn.exists()
        report.timings["delete_to_gone_s"] = time.monotonic() - deleted_at
        trace = rec.snapshots()
    finally:
        rec.stop()
    report.validations.append(v.provision_succeeded_at_ready(ready_snap, scn.provider))
    available = any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in ready_snap.status.get("conditions", [])
    )
    report.add("available-when-ready", available, "condition Available is True at Ready")
    report.validations.append(v.phase_deleting_after_delete(trace))
    report.validations.append(v.single_deprovision_after_provision_terminal(trace))
    report.validations.append(v.resource_gone(gone, report.timings["delete_to_gone_s"]))
    if scn.orders is not None:
        check_record_gone(scn, report, timeout)
    report.validations.append(v.no_orphan_vm(vms_left(scn), f"{names.VM_INSTANCE_LABEL}"))
    report.timings["total_s"] = time.monotonic() - t0
    return report
