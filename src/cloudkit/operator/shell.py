"""The operator shell on kopf: kopf watches, our work queue reconciles (design §9).

kopf supplies watching, reconnection and CRD discovery (the probes are ours: probes.py); it
runs event handlers only (`@kopf.on.event`), which store the object in the watch cache
(cache.py; the reconciler reads from it where a fresh GET is not needed) and enqueue the
instance's key. With no change handlers kopf keeps no progress or diff-base annotations and
adds no finalizer of its own, and posting of log messages as events is off: kopf writes nothing
to the objects. The finalizer, status and events are ours, decided by the lifecycle core and
written by the reconciler.

kopf runs cluster-wide because VirtualMachines live in tenant namespaces; instances outside
CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE (when set) are filtered in the handler. A change of a VM or
of its VirtualMachineInstance (a restart re-creates it; its address appears) wakes the instance
at once; routing.py says which. If the KubeVirt CRDs do not exist, kopf logs that the resources
are unresolved and starts watching them when the CRDs appear; the reconciler then sees vms=None.

Leader election (leadership*.py): every replica watches and queues; only the one holding the
Lease runs the queue's workers and listens for job notifications. A standby's queue fills with
every instance kopf lists and every change after, so a new leader reconciles each instance once
at once (it may have missed notifications). Losing the Lease cancels the reconciles in flight
before it can expire, then the process exits non-zero (LeadershipLost), as controller-runtime's
managers do: a fresh process re-reads everything, no state of the lost term lingers. SIGTERM
lets the reconciles in flight finish, releases the Lease, and exits 0.

Errors found while preparing (kubeconfig, busy ports) raise StartupError; main.py renders them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from kubernetes_asyncio import client
from prometheus_client import start_http_server

from cloudkit.api import names
from cloudkit.operator.cache import Reads, WatchCache
from cloudkit.operator.feedback_sync import FeedbackSync, fulfillment_client, wait_closed
from cloudkit.operator.kopf_storage import NoDiffBase
from cloudkit.operator.kube import Kube, load_configuration
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.launch_slots import LaunchSlots
from cloudkit.operator.leadership_loop import LeaderElector, LeaseClient
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.notifications import NotificationReceiver
from cloudkit.operator.probes import ProbeServer
from cloudkit.operator.reconcile import Reconciler
from cloudkit.operator.routing import Routes, instance_priority, vm_settle_s
from cloudkit.operator.settings import OperatorSettings
from cloudkit.operator.startup import (
    StartupError,
    build_provider,
    lifecycle_config,
)
from cloudkit.operator.workqueue import WorkQueue

log = logging.getLogger("cloudkit.operator")

SHUTDOWN_GRACE_S = 20.0
"""How long SIGTERM waits for the reconciles in flight (the Deployment grants 30 s)."""
RELEASE_TIMEOUT_S = 5.0
WATCH_SERVER_TIMEOUT_S = 30.0
WATCH_CLIENT_MARGIN_S = 5.0
CONNECT_TIMEOUT_S = 10.0
KOPF_REQUEST_TIMEOUT_S = 30.0
EXIT_AFTER_LOSS_S = 20.0
"""A replica that lost the Lease exits by then even if kopf's shutdown hangs (a cut network)."""


class LeadershipLost(Exception):
    """This replica stopped leading without being asked to: the process must exit non-zero."""


@dataclass
class Runtime:
    """Everything the handlers share, created before kopf starts (kopf's `memo`)."""

    settings: OperatorSettings
    reconciler: Reconciler
    queue: WorkQueue[InstanceKey]
    receiver: NotificationReceiver | None = None
    metrics_server: Any = None
    elector: LeaderElector | None = None
    lease_api: Any = None
    probes: ProbeServer | None = None
    feedback: FeedbackSync | None = None
    """The records' status from the resources' (feedback_sync.py), on a queue of its own."""
    feedback_queue: WorkQueue[InstanceKey] | None = None
    stop_flag: asyncio.Event = field(default_factory=asyncio.Event)
    routes: Routes = field(init=False)
    """Which instances a watch event concerns (an instance's, its VMs', their VMIs')."""
    watching: bool = False
    leading: bool = False
    lost: bool = False
    closed: bool = False
    _election: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.routes = Routes(self.settings.namespace, vm_settle_s(self.settings.poll_policy))

    def elect(self) -> None:
        """Lead at once without election; else stand for the Lease in the background."""
        # The task is held (the loop keeps only a weak reference) and awaited by close().
        if self.elector is None:
            self._election = asyncio.create_task(self.lead(), name="lead-without-election")
            return
        self._election = asyncio.create_task(self.elector.run(), name="leader-election")

    async def on_leadership(self, leading: bool) -> None:
        await (self.lead() if leading else self.stand_down())

    async def lead(self) -> None:
        if self.closed:
            return
        self.leading = True
        self.queue.start()
        if self.feedback_queue is not None:
            self.feedback_queue.start()
        self.reconciler.metrics.leader.set(1)
        if self.receiver is not None:
            try:
                await self.receiver.start()
            except OSError as error:
                log.error("job notifications: cannot listen: %s", error.strerror)

    async def stand_down(self) -> None:
        """The Lease is lost: stop acting now (the reconciles in flight are canceled; the
        resourceVersion-guarded intent fences what they may have begun), then exit."""
        self.leading, self.lost = False, True
        self.reconciler.metrics.leader.set(0)
        await self.queue.stop()
        if self.feedback_queue is not None:
            await self.feedback_queue.stop()
        if self.receiver is not None:
            await self.receiver.stop()
        self.stop_flag.set()
        asyncio.get_running_loop().call_later(EXIT_AFTER_LOSS_S, os._exit, 1)

    def readiness(self) -> dict[str, Any] | None:
        """What /readyz shows, or None when not ready (see probes.py)."""
        if self.closed or self.lost:
            return None
        elector = self.elector
        if elector is None:
            return {"leader": self.leading} if self.watching else None
        if self.leading:
            return {"leader": True, "identity": elector.identity}
        if self.watching and elector.observed.is_set():
            return {"leader": False, "identity": elector.identity, "holder": elector.holder}
        return None

    async def close(self) -> None:
        """Finish the reconciles in flight, release the Lease, close everything."""
        if self.closed:
            return
        self.closed = True
        await self.queue.stop(grace=SHUTDOWN_GRACE_S)
        if self.feedback_queue is not None:
            # Its passes are idempotent: one cut short is done again by the next leader.
            await self.feedback_queue.stop()
        if self.feedback is not None:
            await wait_closed(self.feedback)
        if self._election is not None:
            self._election.cancel()
            # Bounded: a cancellation lost inside a library must not keep the process alive.
            await asyncio.wait({self._election}, timeout=RELEASE_TIMEOUT_S)
        if self.elector is not None and self.leading:
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT_S):
                    await self.elector.release()
            except TimeoutError:
                log.warning("releasing the Lease timed out; it will expire instead")
        self.reconciler.metrics.leader.set(0)
        if self.receiver is not None:
            await self.receiver.stop()
        if self.probes is not None:
            await self.probes.stop()
        await self.reconciler.provider.close()
        await self.reconciler.kube.close()
        if self.lease_api is not None:
            await self.lease_api.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry gets none of kopf's implicit login handlers; this is kopf's own,
        # reading KUBECONFIG or the in-cluster account through the kubernetes client.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start_workers(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        runtime.watching = True
        runtime.elect()
        election = runtime.settings.leader_election
        log.info(
            "operator started: provider=%s namespace=%s workers=%d leader election=%s",
            runtime.settings.provider,
            runtime.settings.namespace or "(all)",
            runtime.settings.workers,
            f"Lease {election.namespace}/{election.lease_name} as {election.identity}"
            if election.enabled
            else "off",
        )

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        await runtime.close()

    @kopf.on.event(names.GROUP, names.VERSION, names.PLURAL, registry=registry)
    async def instance_changed(
        event: kopf.RawEvent, name: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime: Runtime = memo["runtime"]
        if not name or not namespace:
            return
        deleted = event.get("type") == "DELETED"
        key = runtime.routes.instance_event(namespace, name, deleted=deleted)
        if key is None:
            return
        obj = event.get("object") or {}
        cache(runtime).instance_event(event.get("type"), obj)
        if runtime.feedback_queue is not None:
            # Every change, the reconciler's own writes included: they are what is fed back.
            runtime.feedback_queue.add(key)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event.get("type") == "MODIFIED" and runtime.reconciler.is_own_write(key, version):
            return
        runtime.queue.add(key, priority=instance_priority(obj))

    @kopf.on.event(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, registry=registry)
    async def vm_changed(
        event: kopf.RawEvent,
        name: str | None,
        namespace: str | None,
        labels: kopf.Labels,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        runtime: Runtime = memo["runtime"]
        cache(runtime).vm_event(event.get("type"), event.get("object") or {})
        deleted = event.get("type") == "DELETED"
        for key in runtime.routes.vm_event(namespace or "", name or "", labels, deleted=deleted):
            runtime.queue.add(key, runtime.routes.vm_settle_s)

    @kopf.on.event(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL, registry=registry
    )
    async def vmi_changed(
        event: kopf.RawEvent,
        name: str | None,
        namespace: str | None,
        labels: kopf.Labels,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        runtime: Runtime = memo["runtime"]
        cache(runtime).vmi_event(event.get("type"), event.get("object") or {})
        for key in runtime.routes.vmi_event(namespace or "", name or "", labels):
            runtime.queue.add(key, runtime.routes.vm_settle_s)

    return registry


def cache(runtime: Runtime) -> WatchCache:
    """The reconciler's watch cache; the shell always gives it one (see _prepare)."""
    assert runtime.reconciler.cache is not None
    return runtime.reconciler.cache


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf would post its own log lines as Events on the objects; ours are explicit.
    settings.posting.enabled = False
    # Event handlers only: no diff base to build on every watch event (kopf_storage.py).
    settings.persistence.diffbase_storage = NoDiffBase()
    # Deadlines on kopf's own requests and watches (it has none by default): a watch whose
    # connection went into a black hole would otherwise wait for events for good. The server
    # ends each watch after WATCH_SERVER_TIMEOUT_S (kopf resumes it from its resourceVersion);
    # a connection that stopped answering is dropped by the client WATCH_CLIENT_MARGIN_S later.
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_S
    settings.watching.client_timeout = WATCH_SERVER_TIMEOUT_S + WATCH_CLIENT_MARGIN_S
    settings.watching.connect_timeout = CONNECT_TIMEOUT_S
    settings.networking.request_timeout = KOPF_REQUEST_TIMEOUT_S
    settings.networking.connect_timeout = CONNECT_TIMEOUT_S
    return settings


async def _prepare(settings: OperatorSettings, kubeconfig: Path | None) -> Runtime:
    metrics = OperatorMetrics()
    try:
        kube = await Kube.connect(
            kubeconfig, on_request=lambda verb: metrics.kubernetes_requests.labels(verb).inc()
        )
    except Exception as error:  # the loaders raise several unrelated types
        raise StartupError(f"KUBECONFIG: cannot load Kubernetes credentials: {error}") from None
    metrics_server = None
    if settings.metrics_address is not None:
        address = settings.metrics_address
        try:
            metrics_server, _ = start_http_server(address.port, addr=address.host)
        except OSError as error:
            await kube.close()
            raise StartupError(
                f"CLOUDKIT_METRICS_ADDRESS {address}: cannot listen: {error.strerror}"
            ) from None
    slots = LaunchSlots.configured(settings, metrics)
    reconciler = Reconciler(
        kube,
        build_provider(settings),
        lifecycle_config(settings),
        metrics,
        slots=slots,
        cache=WatchCache(),
        feedback=settings.feedback is not None,
    )
    metrics.leader.set(0)
    queue: WorkQueue[InstanceKey] = WorkQueue(reconciler, workers=settings.workers)
    slots.wake_with(queue.add)
    runtime = Runtime(settings, reconciler, queue, metrics_server=metrics_server)
    if settings.feedback is not None:
        runtime.feedback = FeedbackSync(
            kube, Reads(kube, reconciler.cache), fulfillment_client(settings.feedback),
            settings.feedback,
        )  # fmt: skip
        runtime.feedback_queue = WorkQueue(runtime.feedback, workers=settings.feedback.workers)
    try:
        await _listeners(runtime, settings, kubeconfig)
    except BaseException:
        await runtime.close()
        raise
    return runtime


async def _listeners(runtime: Runtime, settings: OperatorSettings, kubeconfig: Path | None) -> None:
    """The election's client, the probes, and the notification receiver's address checked."""
    election = settings.leader_election
    if election.enabled:
        runtime.lease_api = client.ApiClient(configuration=await load_configuration(kubeconfig))
        leases = LeaseClient(runtime.lease_api, election.namespace, election.lease_name)
        runtime.elector = LeaderElector(leases, election, on_change=runtime.on_leadership)
    if settings.health_address is not None:
        runtime.probes = ProbeServer(settings.health_address, ready=runtime.readiness)
        try:
            await runtime.probes.start()
        except OSError as error:
            raise StartupError(
                f"CLOUDKIT_HEALTH_ADDRESS {settings.health_address}: "
                f"cannot listen: {error.strerror}"
            ) from None
    if settings.notification_address is not None:
        receiver = NotificationReceiver(
            settings.notification_address, runtime.queue.add, token=settings.notification_token
        )
        try:
            # Checked now (a busy address is a configuration error); served while leading.
            await receiver.start()
            await receiver.stop()
        except OSError as error:
            raise StartupError(
                f"CLOUDKIT_NOTIFICATION_ADDRESS {settings.notification_address}: "
                f"cannot listen: {error.strerror}"
            ) from None
        runtime.receiver = receiver


async def operate(settings: OperatorSettings, kubeconfig: Path | None = None) -> None:
    """Prepare (the AAP check has passed), then run kopf until SIGINT/SIGTERM."""
    runtime = await _prepare(settings, kubeconfig)
    try:
        await kopf.operator(
            registry=build_registry(),
            settings=kopf_settings(),
            standalone=True,
            clusterwide=True,
            stop_flag=runtime.stop_flag,
            memo=kopf.Memo(runtime=runtime),
        )
    finally:
        await runtime.close()
    if runtime.lost:
        raise LeadershipLost("lost the leader Lease; exiting so a fresh process stands again")
