"""The operator shell on kopf: kopf watches, our work queue reconciles (design §9).

kopf supplies watching, reconnection, CRD discovery and the liveness probe; it runs event
handlers only (`@kopf.on.event`), which merely enqueue the instance's key. With no change
handlers kopf keeps no progress or diff-base annotations and adds no finalizer of its own, and
posting of log messages as events is off: kopf writes nothing to the objects. The finalizer,
status and events are ours, decided by the lifecycle core and written by the reconciler.

kopf runs cluster-wide because VirtualMachines live in tenant namespaces; instances outside
CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE (when set) are filtered in the handler. A change of a VM or
of its VirtualMachineInstance (a restart re-creates it; its address appears) wakes the instance
at once; routing.py says which. If the KubeVirt CRDs do not exist, kopf logs that the resources
are unresolved and starts watching them when the CRDs appear; the reconciler then sees vms=None.

Errors found while preparing (kubeconfig, busy ports) raise StartupError; main.py renders them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from cloudkit.api import names
from cloudkit.operator.kube import InstanceKey, Kube
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.notifications import NotificationReceiver
from cloudkit.operator.reconcile import Reconciler
from cloudkit.operator.routing import Routes
from cloudkit.operator.settings import OperatorSettings
from cloudkit.operator.startup import (
    StartupError,
    build_provider,
    lifecycle_config,
)
from cloudkit.operator.workqueue import WorkQueue

log = logging.getLogger("cloudkit.operator")


@dataclass
class Runtime:
    """Everything the handlers share, created before kopf starts (kopf's `memo`)."""

    settings: OperatorSettings
    reconciler: Reconciler
    queue: WorkQueue[InstanceKey]
    receiver: NotificationReceiver | None = None
    metrics_server: Any = None
    routes: Routes = field(init=False)
    """Which instances a watch event concerns (an instance's, its VMs', their VMIs')."""
    closed: bool = False

    def __post_init__(self) -> None:
        self.routes = Routes(self.settings.namespace)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.queue.stop()
        if self.receiver is not None:
            await self.receiver.stop()
        await self.reconciler.provider.close()
        await self.reconciler.kube.close()
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
        runtime.queue.start()
        log.info(
            "operator started: provider=%s namespace=%s workers=%d",
            runtime.settings.provider,
            runtime.settings.namespace or "(all)",
            runtime.settings.workers,
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
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event.get("type") == "MODIFIED" and runtime.reconciler.is_own_write(key, version):
            return
        runtime.queue.add(key)

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
        deleted = event.get("type") == "DELETED"
        for key in runtime.routes.vm_event(namespace or "", name or "", labels, deleted=deleted):
            runtime.queue.add(key)

    @kopf.on.event(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VMI_PLURAL, registry=registry
    )
    async def vm_instance_changed(
        name: str | None, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime: Runtime = memo["runtime"]
        for key in runtime.routes.vmi_event(namespace or "", name or "", labels):
            runtime.queue.add(key)

    return registry


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf would post its own log lines as Events on the objects; ours are explicit.
    settings.posting.enabled = False
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
    reconciler = Reconciler(kube, build_provider(settings), lifecycle_config(settings), metrics)
    queue: WorkQueue[InstanceKey] = WorkQueue(reconciler, workers=settings.workers)
    runtime = Runtime(settings, reconciler, queue, metrics_server=metrics_server)
    if settings.notification_address is not None:
        receiver = NotificationReceiver(
            settings.notification_address, queue.add, token=settings.notification_token
        )
        try:
            await receiver.start()
        except OSError as error:
            await runtime.close()
            raise StartupError(
                f"CLOUDKIT_NOTIFICATION_ADDRESS {settings.notification_address}: "
                f"cannot listen: {error.strerror}"
            ) from None
        runtime.receiver = receiver
    return runtime


async def operate(settings: OperatorSettings, kubeconfig: Path | None = None) -> None:
    """Prepare (the AAP check has passed), then run kopf until SIGINT/SIGTERM."""
    runtime = await _prepare(settings, kubeconfig)
    health = settings.health_address
    try:
        await kopf.operator(
            registry=build_registry(),
            settings=kopf_settings(),
            standalone=True,
            clusterwide=True,
            liveness_endpoint=f"http://{health}/healthz" if health is not None else None,
            memo=kopf.Memo(runtime=runtime),
        )
    finally:
        await runtime.close()
