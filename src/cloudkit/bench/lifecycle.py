"""One measured lifecycle (create → Ready, delete → gone) and the watch that times it.

A single watch per namespace stamps, on one monotonic clock, the moments each instance shows:
its provision job's launch recorded, the playbook's config-version annotation, phase Ready (or
Failed), its deprovision job's launch recorded, the automation finalizer removed, and its
deletion. Every version of the object is seen (a watch event per write), so no mark is late by
a sampling interval. Only the Kubernetes API is used: the same code times the local stack and
an operator deployed on a cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.bench.report import LifecycleRow
from cloudkit.watching import BlockingFollower, Cursor, follow_blocking

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 5


@dataclass
class Marks:
    """Monotonic times at which the watch first saw each step of one instance."""

    provision_launched: float | None = None
    provision_done: float | None = None
    ready: float | None = None
    failed: str | None = None
    """Phase Failed, with the provision job's message."""
    had_automation_finalizer: bool = False
    deprovision_launched: float | None = None
    deprovision_done: float | None = None
    gone: float | None = None
    provider: str | None = None
    """The provider the operator recorded on the provision job."""


@dataclass
class InstanceWatch:
    """Watches the ComputeInstances of one namespace and keeps the marks of each by name."""

    custom: client.CustomObjectsApi
    namespace: str
    marks: dict[str, Marks] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """List first, then watch from that version: nothing created later is missed."""
        cursor = Cursor(f"namespace {self.namespace}", transient=(Exception,))
        cursor.listed(self._list())
        # Any failure is ridden out (urllib3's errors when the server closes the stream or goes
        # away for a moment, JSON decoding of a line cut short): the watch resumes from the last
        # version, and after a 410 lists again (marks already seen stay).
        instances = BlockingFollower(self._list, self._watch, self._see_event, _event_version)
        self._thread = threading.Thread(
            target=follow_blocking,
            args=(instances, cursor, self._stop),
            name=f"bench-watch-{self.namespace}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=WATCH_TIMEOUT_S + 5)

    def wait(self, name: str, until: Callable[[Marks], bool], timeout: float) -> bool:
        """Block until `until(marks of name)` holds; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not until(self.marks.setdefault(name, Marks())):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _list(self) -> str | None:
        listed: dict[str, Any] = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
            names.GROUP, names.VERSION, self.namespace, names.PLURAL
        )
        now = time.monotonic()
        for obj in listed.get("items") or []:
            self._see("ADDED", obj, now)
        return (listed.get("metadata") or {}).get("resourceVersion") or None

    def _watch(self, version: str | None) -> Iterator[dict[str, Any]]:
        stream: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
            self.custom.list_namespaced_custom_object,
            names.GROUP,
            names.VERSION,
            self.namespace,
            names.PLURAL,
            timeout_seconds=WATCH_TIMEOUT_S,
            resource_version=version,
        )
        return stream

    def _see_event(self, event: dict[str, Any]) -> None:
        self._see(event["type"], event["object"], time.monotonic())

    def _see(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = str(obj.get("metadata", {}).get("name") or "")
        with self._changed:
            record(self.marks.setdefault(name, Marks()), kind, obj, now)
            self._changed.notify_all()


def _event_version(event: dict[str, Any]) -> str | None:
    return (event["object"].get("metadata") or {}).get("resourceVersion") or None


def record(marks: Marks, kind: str, obj: dict[str, Any], now: float) -> None:
    """Fold one watch event into the marks (first sighting of each step wins)."""
    if kind == "DELETED":
        marks.gone = marks.gone or now
        return
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    finalizers = meta.get("finalizers") or []
    provision = status.get("provisionJob") or {}
    if provision.get("id") and marks.provision_launched is None:
        marks.provision_launched = now
        marks.provider = provision.get("provider") or marks.provider
    desired = status.get("desiredConfigVersion")
    applied = (meta.get("annotations") or {}).get(names.RECONCILED_CONFIG_VERSION_ANNOTATION)
    if desired and applied == desired and marks.provision_done is None:
        marks.provision_done = now
    if names.AUTOMATION_FINALIZER in finalizers:
        marks.had_automation_finalizer = True
    if not deleting:
        if status.get("phase") == "Ready" and marks.ready is None:
            marks.ready = now
        elif status.get("phase") == "Failed" and marks.ready is None:
            marks.failed = str(provision.get("message") or "provision failed")
        return
    deprovision = status.get("deprovisionJob") or {}
    if deprovision.get("id") and marks.deprovision_launched is None:
        marks.deprovision_launched = now
    if (
        marks.had_automation_finalizer
        and names.AUTOMATION_FINALIZER not in finalizers
        and marks.deprovision_done is None
    ):
        marks.deprovision_done = now


def instance_manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {BENCH_LABEL: "latency"}},
        "spec": {"templateID": "bench_vm", "cores": 1, "memoryGiB": 1},
    }


BENCH_LABEL = f"{names.PREFIX}/bench"


@dataclass(frozen=True)
class LifecycleSpec:
    provider: str
    """The provider expected (local stack) or "" (a deployment: read from its jobs)."""
    run: int
    instance: str
    deployment: str
    timeout_s: float


def run_lifecycle(
    custom: client.CustomObjectsApi,
    watcher: InstanceWatch,
    spec: LifecycleSpec,
    on_step: Callable[[str], None] = lambda _: None,
) -> LifecycleRow:
    """Create, wait for Ready, delete, wait until gone; the row says what happened.

    A lifecycle that fails (phase Failed, a deadline passed, an API error) is still deleted
    and waited for, so it leaves nothing behind; its row carries the error and no figures."""
    namespace = watcher.namespace
    started_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    created = time.monotonic()
    try:
        custom.create_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            namespace,
            names.PLURAL,
            instance_manifest(spec.instance, namespace),
        )
    except ApiException as refused:
        return _failed(spec, started_at, None, f"create refused: {refused.status} {refused.reason}")
    settled = watcher.wait(
        spec.instance, lambda m: m.ready is not None or m.failed is not None, spec.timeout_s
    )
    marks = watcher.marks[spec.instance]
    error = ""
    if not settled:
        error = f"not Ready within {spec.timeout_s:g} s"
    elif marks.failed is not None:
        error = f"phase Failed: {marks.failed}"
    on_step("ready" if not error else "failed")
    deleted = time.monotonic()
    try:
        custom.delete_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, spec.instance
        )
    except ApiException as failure:
        if failure.status != 404:
            error = error or f"delete refused: {failure.status} {failure.reason}"
    if not watcher.wait(spec.instance, lambda m: m.gone is not None, spec.timeout_s):
        error = error or f"not gone within {spec.timeout_s:g} s of the delete request"
    on_step("gone")
    if error:
        return _failed(spec, started_at, marks, error)
    return completed_row(spec, started_at, marks, created=created, deleted=deleted)


def _provider(spec: LifecycleSpec, marks: Marks | None) -> str:
    return (marks.provider if marks else None) or spec.provider or "unknown"


def _failed(spec: LifecycleSpec, started_at: str, marks: Marks | None, error: str) -> LifecycleRow:
    return LifecycleRow(
        provider=_provider(spec, marks),
        run=spec.run,
        instance=spec.instance,
        started_at=started_at,
        ok=False,
        error=error,
        deployment=spec.deployment,
    )


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def completed_row(
    spec: LifecycleSpec, started_at: str, marks: Marks, *, created: float, deleted: float
) -> LifecycleRow:
    """The figures of a lifecycle that completed: its spans between the marks, the overhead
    and the overhead's four hops (which sum to it when every mark was seen)."""
    provision = _span(created, marks.ready)
    deprovision = _span(deleted, marks.gone)
    assert provision is not None and deprovision is not None  # both waited for above
    total = round(provision + deprovision, 3)
    provision_job = _span(marks.provision_launched, marks.provision_done)
    deprovision_job = _span(marks.deprovision_launched, marks.deprovision_done)
    overhead = round(total - (provision_job or 0.0) - (deprovision_job or 0.0), 3)
    return LifecycleRow(
        provider=_provider(spec, marks),
        run=spec.run,
        instance=spec.instance,
        started_at=started_at,
        ok=True,
        provision_s=provision,
        deprovision_s=deprovision,
        total_s=total,
        provision_job_s=provision_job,
        deprovision_job_s=deprovision_job,
        overhead_s=overhead,
        deployment=spec.deployment,
        launch_provision_s=_span(created, marks.provision_launched),
        ready_after_mark_s=_span(marks.provision_done, marks.ready),
        launch_deprovision_s=_span(deleted, marks.deprovision_launched),
        gone_after_mark_s=_span(marks.deprovision_done, marks.gone),
    )
