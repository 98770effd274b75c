"""The operator shell: our watches feed the watch cache, our work queue reconciles (design §9).

kopf runs the process: signals, login, the startup and cleanup handlers (the probes are ours:
probes.py). It watches nothing: watches.py follows instances, VMs and VMIs cluster-wide and
hands every object to the Runtime's handlers, which store it in the watch cache (cache.py; the
reconciler reads from it where a fresh GET is not needed) and enqueue the instance's key
(docs/decisions.md, "The operator's own watches": kopf's per-event machinery was a quarter of
the operator's CPU). With no resource handlers kopf keeps no progress or diff-base annotations
and adds no finalizer of its own, and posting of log messages as events is off: kopf writes
nothing to the objects. The finalizer, status and events are ours, decided by the lifecycle
core and written by the reconciler.

The watches are cluster-wide because VirtualMachines live in tenant namespaces; instances
outside CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE (when set) are filtered in the handler. A change of a
VM or of its VirtualMachineInstance (a restart re-creates it; its address appears) wakes the
instance after a short settle window; routing.py says which. If the KubeVirt CRDs do not exist,
their watches retry with back-off and list once the CRDs appear; the reconciler then sees
vms=None.

Leader election (leadership*.py): every replica watches and queues; only the one holding the
Lease runs the queue's workers and listens for job notifications. A standby's queue fills with
every instance the watch lists and every change after, so a new leader reconciles each instance once
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

from cloudkit.operator.cache import Reads, WatchCache
from cloudkit.operator.environment_lookups import without_environment_lookups
from cloudkit.operator.feedback_sync import FeedbackSync, fulfillment_client, wait_closed
from cloudkit.operator.kube import Kube, load_configuration
from cloudkit.operator.kube_objects import InstanceKey, object_key
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
from cloudkit.operator.watches import (
    INSTANCES,
    VIRTUAL_MACHINE_INSTANCES,
    VIRTUAL_MACHINES,
    Handler,
    Kind,
    Watches,
)
from cloudkit.operator.workqueue import WorkQueue

log = logging.getLogger("cloudkit.operator")

SHUTDOWN_GRACE_S = 20.0
"""How long SIGTERM waits for the reconciles in flight (the Deployment grants 30 s)."""
RELEASE_TIMEOUT_S = 5.0
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
    watches: Watches | None = None
    """The follows of instances, VMs and VMIs that feed the handlers below (watches.py)."""
    stop_flag: asyncio.Event = field(default_factory=asyncio.Event)
    routes: Routes = field(init=False)
    """Which instances a watch event concerns (an instance's, its VMs', their VMIs')."""
    watching: bool = False
    leading: bool = False
    lost: bool = False
    closed: bool = False
    _election: asyncio.Task[None] | None = None
    _watching_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.routes = Routes(self.settings.namespace, vm_settle_s(self.settings.poll_policy))

    # --- the watches' handlers (watches.py): store the object, enqueue its instance -------

    def watch_handlers(self) -> dict[Kind, Handler]:
        return {
            INSTANCES: self.instance_changed,
            VIRTUAL_MACHINES: self.vm_changed,
            VIRTUAL_MACHINE_INSTANCES: self.vmi_changed,
        }

    def instance_changed(self, event_type: str | None, obj: dict[str, Any]) -> None:
        namespace, name = object_key(obj)
        if not name or not namespace:
            return
        deleted = event_type == "DELETED"
        key = self.routes.instance_event(namespace, name, deleted=deleted)
        if key is None:
            return
        cache(self).instance_event(event_type, obj)
        if self.feedback_queue is not None:
            # Every change, the reconciler's own writes included: they are what is fed back.
            self.feedback_queue.add(key)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event_type == "MODIFIED" and self.reconciler.is_own_write(key, version):
            return
        self.queue.add(key, priority=instance_priority(obj))

    def vm_changed(self, event_type: str | None, obj: dict[str, Any]) -> None:
        cache(self).vm_event(event_type, obj)
        namespace, name = object_key(obj)
        deleted = event_type == "DELETED"
        for key in self.routes.vm_event(namespace, name, _labels(obj), deleted=deleted):
            self.queue.add(key, self.routes.vm_settle_s)

    def vmi_changed(self, event_type: str | None, obj: dict[str, Any]) -> None:
        cache(self).vmi_event(event_type, obj)
        namespace, name = object_key(obj)
        for key in self.routes.vmi_event(namespace, name, _labels(obj)):
            self.queue.add(key, self.routes.vm_settle_s)

    def watch_synced(self, kind: Kind) -> None:
        cache(self).watch_synced(kind.plural)

    def watch(self) -> None:
        """Follow the three kinds (every replica: a standby's queue fills too)."""
        if self.watches is not None and not self._watching_tasks:
            self._watching_tasks = self.watches.start(self.watch_handlers(), self.watch_synced)

    # --- leading ---------------------------------------------------------------------------

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
        for task in self._watching_tasks:
            task.cancel()
        await asyncio.gather(*self._watching_tasks, return_exceptions=True)
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
        if self.watches is not None:
            await self.watches.close()
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
        runtime.watch()
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

    return registry


def cache(runtime: Runtime) -> WatchCache:
    """The reconciler's watch cache; the shell always gives it one (see _prepare)."""
    assert runtime.reconciler.cache is not None
    return runtime.reconciler.cache


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def kopf_settings() -> kopf.OperatorSettings:
    """kopf runs the process (signals, login, startup and cleanup) and watches nothing."""
    settings = kopf.OperatorSettings()
    # kopf would post its own log lines as Events on the objects; ours are explicit.
    settings.posting.enabled = False
    # No resource handlers: nothing to discover, no CRDs to watch for (watches.py follows).
    settings.scanning.disabled = True
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
    # A client of their own: the requests metric counts the reconciler's requests only.
    watching_client = client.ApiClient(configuration=await load_configuration(kubeconfig))
    runtime.watches = Watches(without_environment_lookups(watching_client))
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
            settings.notification_address,
            runtime.queue.add,
            token=settings.notification_token,
            heard=runtime.reconciler.heard,
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
