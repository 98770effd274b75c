"""`cloudkit up`: start, supervise and stop the whole local stack on loopback.

Owns the order of things: API server (subprocess) → CRDs and the instance namespace → VM
simulator (in this process) → the tenants' issuer and fulfillment service (subprocesses; see
`fulfillment`), the fulfillment controller's account, the stack's cluster registered as its hub
and the controller (see `fulfillment_controller`) → automation backend (the AWX-compatible
service for AAP direct, or ansible-rulebook for EDA; see backends) → operator replicas
(subprocesses; one leads by the Lease, the others stand by) → DIR/kubeconfig, written only once
all of it is ready. Every server binds 127.0.0.1 on a free port and keeps its data under the
one state directory; the operator reaches the others over sockets, exactly as in a cluster. An
operator replica that exits is started again, as a kubelet restarts a container (`replicas`:
back-off, the same identity; the others keep running); if any other child dies the stack says
which and stops the rest. SIGINT/SIGTERM stop everything, children first. What each child is
told comes from `environment`; `children` spawns them. With `faults`, the operator reaches the
API server, its automation backend and the fulfillment API, and the fulfillment controller the
API and the API server, through fault relays (`fault_links`) whose plans begin once the stack
is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudkit.local.eda import EdaHandle
from cloudkit.local.kubevirt import VmSimulatorHandle, start_vm_simulator
from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack import environment
from cloudkit.local.stack.children import (
    StackError,
    apiserver_url,
    backend_ready,
    operator_healthy,
    operator_leads,
    prepare_cluster,
    publish_kubeconfig,
    spawn_apiserver,
    spawn_operator,
    start_backend,
)
from cloudkit.local.stack.console import StackConsole
from cloudkit.local.stack.fault_links import FAULTS_FILE, FaultedLinks, FaultSettings, Link
from cloudkit.local.stack.fulfillment import ENDPOINT_FILE as FULFILLMENT_ENDPOINT
from cloudkit.local.stack.fulfillment import (
    FulfillmentEndpoint,
    FulfillmentStartError,
    start_fulfillment,
)
from cloudkit.local.stack.fulfillment_controller import (
    CONTROLLER_ACCOUNT,
    ControllerPlaces,
    ControllerStartError,
    controller_leads,
    prepare_controller_account,
    register_hub,
    start_controller,
)
from cloudkit.local.stack.operator_account import (
    DEPLOY_DIR,
    prepare_operator_kubeconfig,
    service_account_username,
    write_token_file,
)
from cloudkit.local.stack.orders_view import follow_orders
from cloudkit.local.stack.ports import free_port
from cloudkit.local.stack.procs import Child, LogSink
from cloudkit.local.stack.replicas import STATUS_FILE, OperatorReplicas
from cloudkit.local.stack.strays import report_strays

log = logging.getLogger("cloudkit.local.stack")

PROVIDERS = ("aap", "eda")
FAULTS_PUBLISH_S = 2.0
INSTANCE_NAMESPACE = "cloudkit-computeinstance"

__all__ = ["INSTANCE_NAMESPACE", "PROVIDERS", "StackError", "StackHandle", "run", "start_stack"]


@dataclass
class StackHandle:
    """Where everything is, and `stop()`; `failed` is set with a reason if a child dies."""

    provider: str
    state_dir: Path
    kubeconfig: Path
    apiserver_url: str
    automation_url: str
    automation_token_file: Path
    metrics_url: str
    health_url: str
    notification_url: str
    vm_boot_seconds: float
    operator_running: bool
    operator_replicas: int = 1
    replica_health_urls: dict[str, str] = field(default_factory=dict)
    """Each operator replica's health URL, by its name (`operator`, `operator-2`, …)."""
    leader: str | None = None
    """The replica that held the operators' Lease when the stack became ready."""
    operators: OperatorReplicas | None = None
    """The replicas kept running, and who leads now (DIR/operators.json publishes it)."""
    fulfillment_url: str = ""
    """The tenants' API (HTTPS; its CA and the issuer are in DIR/fulfillment.json)."""
    hub_id: str = ""
    """The hub (this cluster) the fulfillment controller places records on."""
    controller_token_file: Path | None = None
    """The fulfillment controller's ServiceAccount token: an admin of the fulfillment API."""
    instance_namespace: str = INSTANCE_NAMESPACE
    """The one namespace the operator reconciles; the user's kubeconfig defaults to it."""
    children: list[Child] = field(default_factory=list)
    simulator: VmSimulatorHandle | None = None
    eda: EdaHandle | None = None
    """With the EDA provider: the activation, whose stop also ends the playbooks it ran."""
    faults: FaultedLinks | None = None
    """With faults on: the relays on the links between the parts, and their plans."""
    failure: str | None = None
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    @property
    def automation_token(self) -> str:
        return self.automation_token_file.read_text().strip()

    @property
    def endpoints(self) -> environment.OperatorEndpoints:
        return environment.OperatorEndpoints(
            self.metrics_url, self.health_url, self.notification_url
        )

    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def supervise(self) -> None:
        """A dead operator replica is started again (`operators`); any other dead child
        fails the stack."""
        for child in self.children:
            if self.operators is None or not self.operators.owns(child):
                self._watchers.append(asyncio.create_task(self._watch(child)))
        if self.operators is not None:
            self.operators.start(self.leader)
        if self.faults is not None:
            self.faults.begin()
            self.faults.write(self.state_dir)
            self._watchers.append(asyncio.create_task(self._publish_faults(self.faults)))

    @property
    def faults_seed(self) -> int | None:
        return None if self.faults is None else self.faults.settings.seed

    async def _publish_faults(self, faults: FaultedLinks) -> None:
        """DIR/faults.json kept current: what each link has suffered so far."""
        while True:
            await asyncio.sleep(FAULTS_PUBLISH_S)
            faults.write(self.state_dir)

    async def _watch(self, child: Child) -> None:
        await child.process.wait()
        if not child.stopping and not self._stopped:
            self.failure = child.describe_exit()
            self.failed.set()

    async def stop(self) -> None:
        """Operator first (it must not see a half-stopped world), then automation, simulator,
        API server."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._watchers:
            task.cancel()
        if self.faults is not None:
            await self.faults.calm()
        if self.operators is not None:
            await self.operators.stop()  # no restart from here on
        for child in reversed(self.children):
            if child.name == "apiserver" and self.simulator is not None:
                await self.simulator.stop()  # before its API server goes away
                self.simulator = None
            if self.eda is not None and child is self.eda.child:
                await self.eda.stop()
            else:
                await child.stop()
        if self.simulator is not None:
            await self.simulator.stop()
        if self.faults is not None:
            await self.faults.stop()
            self.faults.write(self.state_dir)  # what the run suffered, kept for its report
        with contextlib.suppress(FileNotFoundError):
            self.kubeconfig.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STATUS_FILE).unlink()
        (self.state_dir / FULFILLMENT_ENDPOINT).unlink(missing_ok=True)  # it would lie too


def _prepare_state_dir(state_dir: Path) -> Path:
    state_dir = private_dir(state_dir.resolve())
    for stale in (
        state_dir / "kubeconfig",
        state_dir / "apiserver" / "kubeconfig",
        state_dir / STATUS_FILE,
        state_dir / FAULTS_FILE,
    ):
        # Presence of DIR/kubeconfig means "ready"; a stale one would lie.
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    return state_dir


async def start_stack(
    *,
    provider: str = "aap",
    state_dir: Path = Path(".cloudkit"),
    vm_boot_seconds: float = 5.0,
    log_sink: LogSink | None = None,
    with_operator: bool = True,
    job_notifications: bool = True,
    simulated_jobs: Mapping[str, Any] | None = None,
    operator_replicas: int = 1,
    with_fulfillment: bool = True,
    faults: int | FaultSettings | None = None,
) -> StackHandle:
    """Start everything and return once it is ready (DIR/kubeconfig written last).

    job_notifications=False leaves the operator to polling alone, as upstream (benchmarks
    use it for the baseline). simulated_jobs (the automation service's `simulate` settings,
    e.g. {"run_seconds": 2}) makes the AAP templates simulated: no Ansible runs (load tests).
    operator_replicas > 1 runs standbys beside the leader (one Lease decides). faults (a seed,
    or settings with one) puts a fault relay on every link between the parts, each following
    the plan the seed gives it once the stack is ready; DIR/faults.json says so."""
    if provider not in PROVIDERS:
        raise StackError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if operator_replicas < 1:
        raise StackError(f"operator replicas must be at least 1, got {operator_replicas}")
    state_dir = _prepare_state_dir(state_dir)
    env = environment.base_env(os.environ, str(Path(sys.executable).parent))
    endpoints = environment.operator_endpoints(
        notification_port=free_port(), metrics_port=free_port(), health_port=free_port()
    )
    handle = StackHandle(
        provider=provider,
        state_dir=state_dir,
        kubeconfig=state_dir / "kubeconfig",
        apiserver_url="",
        automation_url="",
        automation_token_file=state_dir / "automation" / "automation-token",
        metrics_url=endpoints.metrics_url,
        health_url=endpoints.health_url,
        notification_url=endpoints.notification_url,
        vm_boot_seconds=vm_boot_seconds,
        operator_running=False,
        operator_replicas=operator_replicas,
    )
    if faults is not None:
        settings = faults if isinstance(faults, FaultSettings) else FaultSettings(seed=faults)
        handle.faults = FaultedLinks(settings)
    try:
        await _start_children(
            handle, env, log_sink, with_operator, job_notifications, simulated_jobs,
            with_fulfillment,
        )  # fmt: skip
    except BaseException:
        await handle.stop()
        raise
    handle.supervise()
    # Reported, not reconciled: the operator keeps upstream's one watched namespace.
    strays = report_strays(state_dir / "apiserver" / "kubeconfig", handle.instance_namespace)
    handle._watchers.append(asyncio.create_task(strays))
    return handle


async def _start_children(
    handle: StackHandle,
    env: dict[str, str],
    sink: LogSink | None,
    with_operator: bool,
    job_notifications: bool,
    simulated_jobs: Mapping[str, Any] | None = None,
    with_fulfillment: bool = True,
) -> None:
    """Each part in order, each recorded in `handle` as soon as it runs (so a failure later
    still stops it)."""
    state_dir, logs = handle.state_dir, handle.state_dir / "logs"
    # The operator's job-notification receiver requires this token (like every server here).
    notification_token = secrets.token_urlsafe(24) if job_notifications else None
    apiserver_dir = state_dir / "apiserver"
    apiserver = await spawn_apiserver(apiserver_dir, env=env, logs=logs, sink=sink)
    handle.children.append(apiserver)
    handle.apiserver_url = await apiserver_url(apiserver)
    inner_kubeconfig = apiserver_dir / "kubeconfig"

    await prepare_cluster(inner_kubeconfig, INSTANCE_NAMESPACE)
    handle.simulator = await start_vm_simulator(
        inner_kubeconfig, boot_seconds=handle.vm_boot_seconds, stop_seconds=handle.vm_boot_seconds
    )
    controller: Child | None = None
    if with_fulfillment:
        # The operator's feedback writes the records' status: its account is an admin there.
        account = with_operator and (DEPLOY_DIR / "kustomization.yaml").is_file()
        admins = [service_account_username()] if account else []
        controller = await _start_fulfillment(handle, env, sink, inner_kubeconfig, admins)

    backend = await start_backend(
        handle.provider,
        state_dir=state_dir,
        env=environment.playbook_env(
            env, kubeconfig=inner_kubeconfig, backend_dir=state_dir / handle.provider
        ),
        logs=logs,
        sink=sink,
        notification=(
            environment.job_notification(handle.notification_url, notification_token)
            if notification_token is not None
            else None
        ),
        simulate=simulated_jobs,
    )
    handle.eda = backend.activation
    handle.children.append(backend.child)
    handle.automation_url = backend.url
    handle.automation_token_file = backend.token_file

    # The operator checks at start-up that its backend answers, so the backend comes first.
    await backend_ready(backend)
    if controller is not None:
        try:
            await controller_leads(controller)
        except ControllerStartError as error:
            raise StackError(str(error)) from error
    if with_operator and importlib.util.find_spec("cloudkit.operator.main") is not None:
        # Least privilege, as deployed: the ServiceAccount and RBAC of deploy/operator.
        operator_kubeconfig = await prepare_operator_kubeconfig(
            inner_kubeconfig, apiserver_dir / "operator.kubeconfig"
        )
        operator_env = environment.operator_env(
            env,
            provider=handle.provider,
            backend_env=await _routed_settings(
                handle.faults,
                Link.OPERATOR_AUTOMATION,
                backend.operator_env,
                environment.OPERATOR_BACKEND_URLS,
            ),
            namespace=INSTANCE_NAMESPACE,
            endpoints=handle.endpoints,
            notification_token=notification_token,
            feedback_env=await _routed_feedback(
                handle.faults, _feedback_env(handle, operator_kubeconfig, inner_kubeconfig)
            ),
        )
        if handle.faults is not None:
            operator_kubeconfig = await _routed_kubeconfig(
                handle.faults, Link.OPERATOR_APISERVER, operator_kubeconfig
            )
        await _start_operators(handle, operator_env, operator_kubeconfig, sink)
    elif with_operator:
        log.warning("cloudkit.operator.main is not installed; the stack runs without operator")

    # Last: the kubeconfig users see, so its presence means everything is ready.
    publish_kubeconfig(inner_kubeconfig, handle.kubeconfig, INSTANCE_NAMESPACE)


async def _routed_settings(
    faults: FaultedLinks | None, link: Link, settings: Mapping[str, str], urls: Iterable[str]
) -> dict[str, str]:
    """`settings` with the addresses named `urls` through `link`'s relay (as they are without
    faults)."""
    routed = dict(settings)
    if faults is not None:
        for name in urls:
            if name in routed:
                routed[name] = await faults.route(link, routed[name])
    return routed


async def _routed_kubeconfig(faults: FaultedLinks, link: Link, kubeconfig: Path) -> Path:
    """A copy of `kubeconfig` (beside it) whose server is `link`'s relay."""
    text = await asyncio.to_thread(kubeconfig.read_text)
    server = await faults.route(link, environment.kubeconfig_server(text))
    routed = kubeconfig.with_name(f"{kubeconfig.stem}.faults{kubeconfig.suffix}")
    write_private(routed, environment.kubeconfig_with_server(text, server))
    return routed


async def _route_hub_kubeconfigs(faults: FaultedLinks, places: ControllerPlaces) -> None:
    """Every hub kubeconfig the controller is given (its Lease's cluster among them) points at
    the controller → API server relay, in place: the controller reads no other copy."""
    for hub in sorted(places.hubs.iterdir()):
        text = await asyncio.to_thread(hub.read_text)
        server = await faults.route(Link.CONTROLLER_APISERVER, environment.kubeconfig_server(text))
        write_private(hub, environment.kubeconfig_with_server(text, server))


async def _routed_feedback(
    faults: FaultedLinks | None, feedback: Mapping[str, str] | None
) -> dict[str, str] | None:
    if feedback is None:
        return None
    return await _routed_settings(
        faults, Link.OPERATOR_FULFILLMENT, feedback, (environment.FEEDBACK_URL,)
    )


def _feedback_env(
    handle: StackHandle, operator_kubeconfig: Path, admin_kubeconfig: Path
) -> dict[str, str] | None:
    """The operator's feedback settings: the service's URL and CA, and a file with the
    operator account's token; None (no feedback) without a service or without that account."""
    if not handle.fulfillment_url:
        return None
    if operator_kubeconfig == admin_kubeconfig:
        log.warning("the operator has no ServiceAccount of its own: no feedback to the API")
        return None
    token_file = write_token_file(operator_kubeconfig, operator_kubeconfig.with_suffix(".token"))
    ca_file = FulfillmentEndpoint.read(handle.state_dir).ca_file
    return environment.feedback_operator_env(handle.fulfillment_url, ca_file, token_file)


async def _start_fulfillment(
    handle: StackHandle,
    env: dict[str, str],
    sink: LogSink | None,
    kubeconfig: Path,
    admins: list[str],
) -> Child:
    """Issuer and service (`admins` and the controller's account its admins), then the
    controller's account, the hub `local` (this cluster) and the controller; returns the
    controller's child (not yet known to lead)."""
    places = ControllerPlaces(handle.state_dir / "fulfillment-controller")
    logs = handle.state_dir / "logs"
    try:
        endpoint = await start_fulfillment(
            handle.state_dir,
            kubeconfig=kubeconfig,
            env=env,
            logs=logs,
            sink=sink,
            children=handle.children,
            admins=[CONTROLLER_ACCOUNT, *admins],
        )
        handle.fulfillment_url = endpoint.address
        await prepare_controller_account(kubeconfig, places, handle.instance_namespace)
        handle.controller_token_file = places.token_file
        ca_file = Path(endpoint.ca_file)
        handle.hub_id = await register_hub(
            endpoint.address, ca_file, places, handle.instance_namespace
        )
        controller_address = endpoint.address
        if handle.faults is not None:
            controller_address = await handle.faults.route(
                Link.CONTROLLER_FULFILLMENT, endpoint.address
            )
            await _route_hub_kubeconfigs(handle.faults, places)
        controller = await start_controller(
            address=controller_address,
            ca_file=ca_file,
            places=places,
            env=env,
            logs=logs,
            sink=sink,
            children=handle.children,
        )
    except (FulfillmentStartError, ControllerStartError) as error:
        raise StackError(str(error)) from error
    controller_log = str((logs / "controller.log").resolve())
    FulfillmentEndpoint(
        endpoint.address, endpoint.ca_file, endpoint.issuer_dir, handle.hub_id, controller_log
    ).write(handle.state_dir)
    return controller


async def _start_operators(
    handle: StackHandle, operator_env: dict[str, str], kubeconfig: Path, sink: LogSink | None
) -> None:
    """N replicas under the same ServiceAccount; ready once each is healthy and one leads."""
    logs = handle.state_dir / "logs"
    admin = handle.state_dir / "apiserver" / "kubeconfig"

    async def spawn(name: str, env: Mapping[str, str]) -> Child:
        return await spawn_operator(kubeconfig, env=env, logs=logs, sink=sink, name=name)

    operators = OperatorReplicas(
        spawn=spawn,
        children=handle.children,
        admin_kubeconfig=admin,
        lease=environment.OPERATOR_LEASE,
        status_file=handle.state_dir / STATUS_FILE,
    )
    handle.operators = operators
    replicas: dict[str, Child] = {}
    for index in range(handle.operator_replicas):
        name = environment.replica_name(index)
        metrics_url, health_url = handle.metrics_url, handle.health_url
        if index:
            metrics_url = f"http://{environment.HOST}:{free_port()}/metrics"
            health_url = f"http://{environment.HOST}:{free_port()}/healthz"
        env = environment.replica_env(
            operator_env, name=name, metrics_url=metrics_url, health_url=health_url
        )
        child = await spawn(name, env)
        handle.children.append(child)
        operators.add(name, env, child)
        replicas[name] = child
        handle.replica_health_urls[name] = health_url
    for name, child in replicas.items():
        await operator_healthy(child, handle.replica_health_urls[name])
        child.collecting = False  # nothing waits for its lines: do not queue them forever
    handle.leader = await operator_leads(admin, environment.OPERATOR_LEASE, replicas)
    handle.operator_running = True


# --- `cloudkit up` ------------------------------------------------------------------------------


def _orders_view(handle: StackHandle, ui: StackConsole) -> list[asyncio.Task[None]]:
    """The tenants' orders on the console, as an admin of the API (the controller's account)."""
    if not handle.fulfillment_url or handle.controller_token_file is None:
        return []
    endpoint = FulfillmentEndpoint.read(handle.state_dir)
    follow = follow_orders(
        address=handle.fulfillment_url,
        ca_file=Path(endpoint.ca_file),
        token_file=handle.controller_token_file,
        kubeconfig=handle.state_dir / "apiserver" / "kubeconfig",
        namespace=handle.instance_namespace,
        show=ui.orders,
    )
    return [asyncio.create_task(follow, name="orders-view")]


def run(
    *,
    provider: str,
    state_dir: Path,
    vm_boot_seconds: float,
    operator_replicas: int = 1,
    simulated_jobs: Mapping[str, Any] | None = None,
    faults: int | FaultSettings | None = None,
) -> None:
    """Run the stack in the foreground until Ctrl-C; exit code 1 if something died."""
    ui = StackConsole()
    logging.basicConfig(level=logging.INFO, handlers=[ui.logging_handler()], force=True)
    options = {
        "operator_replicas": operator_replicas,
        "simulated_jobs": simulated_jobs,
        "faults": faults,
    }
    try:
        code = asyncio.run(_run(provider, state_dir, vm_boot_seconds, options, ui))
    except StackError as error:
        ui.error(str(error))
        code = 1
    if code:
        raise SystemExit(code)


async def _run(
    provider: str,
    state_dir: Path,
    vm_boot_seconds: float,
    options: Mapping[str, Any],
    ui: StackConsole,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(
        start_stack(
            provider=provider,
            state_dir=state_dir,
            vm_boot_seconds=vm_boot_seconds,
            log_sink=ui.child_line,
            **options,
        )
    )
    interrupted = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        ui.note("interrupted during start-up; stopping")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StackError):
            await starting
        return 130
    interrupted.cancel()
    handle = starting.result()
    ui.ready(handle)
    if handle.operators is not None:
        handle.operators.listeners.append(ui.operators)
    failed = asyncio.create_task(handle.failed.wait())
    stopping = asyncio.create_task(stop.wait())
    orders = _orders_view(handle, ui)
    await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (failed, stopping, *orders):
        task.cancel()
    await asyncio.gather(*orders, return_exceptions=True)  # its clients closed before the stop
    if handle.failure:
        ui.error(f"{handle.failure}\nstopping the stack")
    else:
        ui.note("stopping the stack")
    await handle.stop()
    ui.note("stopped; nothing left running")
    return 1 if handle.failure else 0
