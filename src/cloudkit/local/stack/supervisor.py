"""`cloudkit up`: start, supervise and stop the whole local stack on loopback.

Owns the order of things: API server (subprocess) → CRDs and the instance namespace → VM
simulator (in this process) → automation backend (the AWX-compatible service for AAP direct,
or ansible-rulebook for EDA; see backends) → operator (subprocess) → DIR/kubeconfig,
written only once all of it is ready. Every server binds 127.0.0.1 on a free port and keeps
its data under the one state directory; the operator reaches the others over sockets, exactly
as in a cluster. If a child dies the stack says which and stops the rest; SIGINT/SIGTERM stop
everything, children first.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import re
import secrets
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cloudkit.api.crd import crd_manifest
from cloudkit.local.eda import EdaHandle
from cloudkit.local.kubevirt import VmSimulatorHandle, start_vm_simulator
from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack.backends import (
    Backend,
    BackendError,
    spawn_automation_backend,
    start_eda_backend,
)
from cloudkit.local.stack.console import StackConsole
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.procs import (
    Child,
    ChildFailed,
    LogSink,
    cloudkit_command,
    spawn,
    wait_for_port,
)
from cloudkit.local.stack.strays import report_strays

log = logging.getLogger("cloudkit.local.stack")

PROVIDERS = ("aap", "eda")
INSTANCE_NAMESPACE = "cloudkit-computeinstance"
NOTIFICATION_PATH = "/notifications"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
CRD_PATH = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")


class StackError(RuntimeError):
    """The stack cannot start or stopped unexpectedly; the message is meant for people."""


def free_port() -> int:
    # The port is released before the child binds it; on loopback the window is negligible.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
    instance_namespace: str = INSTANCE_NAMESPACE
    """The one namespace the operator reconciles; the user's kubeconfig defaults to it."""
    children: list[Child] = field(default_factory=list)
    simulator: VmSimulatorHandle | None = None
    eda: EdaHandle | None = None
    """With the EDA provider: the activation, whose stop also ends the playbooks it ran."""
    failure: str | None = None
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    @property
    def automation_token(self) -> str:
        return self.automation_token_file.read_text().strip()

    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def supervise(self) -> None:
        for child in self.children:
            self._watchers.append(asyncio.create_task(self._watch(child)))

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
        with contextlib.suppress(FileNotFoundError):
            self.kubeconfig.unlink()


def _prepare_state_dir(state_dir: Path) -> Path:
    state_dir = private_dir(state_dir.resolve())
    for stale in (state_dir / "kubeconfig", state_dir / "apiserver" / "kubeconfig"):
        # Presence of DIR/kubeconfig means "ready"; a stale one would lie.
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    return state_dir


def _publish_kubeconfig(source: Path, target: Path) -> None:
    """The user's copy, whose context namespace is the watched one: `kubectl apply` of a
    manifest without a namespace then lands where the operator looks."""
    config = yaml.safe_load(source.read_text())
    for context in config.get("contexts") or []:
        context["context"]["namespace"] = INSTANCE_NAMESPACE
    tmp = target.with_suffix(".tmp")
    write_private(tmp, yaml.safe_dump(config, sort_keys=False))  # 0600 first: it holds the token
    tmp.replace(target)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    # Playbooks and our own tools must never fall back to a user's cluster.
    for name in ("K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"):
        env.pop(name, None)
    return env


async def _prepare_cluster(kubeconfig: Path) -> None:
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        crd = crd_manifest()
        await kube.ensure(CRD_PATH, crd)
        await kube.ensure(
            resource_path("", "v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INSTANCE_NAMESPACE}},
        )
        from cloudkit.local.kubevirt.simulator import wait_established

        await wait_established(kube, crd["metadata"]["name"])


async def start_stack(
    *,
    provider: str = "aap",
    state_dir: Path = Path(".cloudkit"),
    vm_boot_seconds: float = 5.0,
    log_sink: LogSink | None = None,
    with_operator: bool = True,
    job_notifications: bool = True,
) -> StackHandle:
    """Start everything and return once it is ready (DIR/kubeconfig written last).

    job_notifications=False leaves the operator to polling alone, as upstream (benchmarks
    use it for the baseline)."""
    if provider not in PROVIDERS:
        raise StackError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    state_dir = _prepare_state_dir(state_dir)
    kubeconfig = state_dir / "kubeconfig"
    logs = state_dir / "logs"
    env = _base_env()
    notify_port, metrics_port, health_port = free_port(), free_port(), free_port()
    handle = StackHandle(
        provider=provider,
        state_dir=state_dir,
        kubeconfig=kubeconfig,
        apiserver_url="",
        automation_url="",
        automation_token_file=state_dir / "automation" / "automation-token",
        metrics_url=f"http://{HOST}:{metrics_port}/metrics",
        health_url=f"http://{HOST}:{health_port}/healthz",
        notification_url=f"http://{HOST}:{notify_port}{NOTIFICATION_PATH}",
        vm_boot_seconds=vm_boot_seconds,
        operator_running=False,
    )
    try:
        await _start_children(handle, env, logs, log_sink, with_operator, job_notifications)
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
    logs: Path,
    sink: LogSink | None,
    with_operator: bool,
    job_notifications: bool,
) -> None:
    state_dir = handle.state_dir
    # The operator's job-notification receiver requires this token (like every server here).
    notification_token = secrets.token_urlsafe(24)
    apiserver_dir = state_dir / "apiserver"
    apiserver = await spawn(
        "apiserver",
        cloudkit_command("apiserver", "--state-dir", str(apiserver_dir), "--port", "0"),
        env=env,
        log_dir=logs,
        sink=sink,
    )
    handle.children.append(apiserver)
    line = await _expect(apiserver, r"listening on (\S+)")
    handle.apiserver_url = _group(line, r"listening on (\S+)")
    inner_kubeconfig = apiserver_dir / "kubeconfig"

    await _prepare_cluster(inner_kubeconfig)
    handle.simulator = await start_vm_simulator(
        inner_kubeconfig, boot_seconds=handle.vm_boot_seconds, stop_seconds=handle.vm_boot_seconds
    )

    backend_dir = state_dir / handle.provider
    playbook_env = {
        **env,
        "KUBECONFIG": str(inner_kubeconfig),
        "K8S_AUTH_KUBECONFIG": str(inner_kubeconfig),
        "ANSIBLE_HOME": str(backend_dir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(backend_dir / "ansible-tmp"),
    }
    if handle.provider == "aap":
        backend = await spawn_automation_backend(
            state_dir=state_dir,
            env=playbook_env,
            logs=logs,
            sink=sink,
            # The token goes in a header, as AWX webhook notifications carry credentials.
            notification=(
                {
                    "url": handle.notification_url,
                    "headers": {"Authorization": f"Bearer {notification_token}"},
                }
                if job_notifications
                else None
            ),
            port=free_port(),
        )
    else:
        try:
            backend = await start_eda_backend(
                state_dir=state_dir, env=playbook_env, sink=sink, port=free_port()
            )
        except BackendError as error:
            raise StackError(str(error)) from error
        handle.eda = backend.activation
    handle.children.append(backend.child)
    handle.automation_url = backend.url
    handle.automation_token_file = backend.token_file

    # The operator checks at start-up that its backend answers, so the backend comes first.
    await _backend_ready(backend)
    if with_operator and importlib.util.find_spec("cloudkit.operator.main") is not None:
        # The stack's own backend settings win over any left in the user's shell.
        stack_owned = {
            "CLOUDKIT_AAP_TOKEN",
            "CLOUDKIT_EDA_WEBHOOK_TOKEN",
            "CLOUDKIT_NOTIFICATION_ADDRESS",
            "CLOUDKIT_NOTIFICATION_TOKEN",
        }
        inherited = {k: v for k, v in env.items() if k not in stack_owned}
        operator_env = {
            **inherited,
            "CLOUDKIT_PROVISIONING_PROVIDER": handle.provider,
            **backend.operator_env,
            "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": INSTANCE_NAMESPACE,
            "CLOUDKIT_METRICS_ADDRESS": _address(handle.metrics_url),
            "CLOUDKIT_HEALTH_ADDRESS": _address(handle.health_url),
        }
        if job_notifications:
            operator_env["CLOUDKIT_NOTIFICATION_ADDRESS"] = _address(handle.notification_url)
            operator_env["CLOUDKIT_NOTIFICATION_TOKEN"] = notification_token
        operator = await spawn(
            "operator",
            cloudkit_command("operator", "--kubeconfig", str(inner_kubeconfig)),
            env=operator_env,
            log_dir=logs,
            sink=sink,
        )
        handle.children.append(operator)
        await _operator_healthy(operator, handle.health_url)
        handle.operator_running = True
    elif with_operator:
        log.warning("cloudkit.operator.main is not installed; the stack runs without operator")

    # Last: the kubeconfig users see, so its presence means everything is ready.
    _publish_kubeconfig(inner_kubeconfig, handle.kubeconfig)


async def _backend_ready(backend: Backend) -> None:
    try:
        await backend.wait_ready()
    except BackendError as error:
        raise StackError(str(error)) from error


async def _operator_healthy(operator: Child, health_url: str) -> None:
    health_port = int(_address(health_url).rsplit(":", 1)[1])
    try:
        await wait_for_port(HOST, health_port, operator, START_TIMEOUT_S)
    except ChildFailed as error:
        raise StackError(str(error)) from error
    except TimeoutError as error:
        raise StackError(f"operator not healthy within {START_TIMEOUT_S:.0f}s") from error


async def _expect(child: Child, pattern: str) -> str:
    regex = re.compile(pattern)
    try:
        return await child.wait_for_line(lambda line: bool(regex.search(line)), START_TIMEOUT_S)
    except TimeoutError as error:
        raise StackError(f"{child.name} did not start within {START_TIMEOUT_S:.0f}s") from error
    except ChildFailed as error:
        raise StackError(str(error)) from error


def _group(line: str, pattern: str) -> str:
    match = re.search(pattern, line)
    return match.group(1) if match else ""


def _address(url: str) -> str:
    """host:port of an http URL."""
    return url.split("://", 1)[1].split("/", 1)[0]


# --- `cloudkit up` ------------------------------------------------------------------------------


def run(*, provider: str, state_dir: Path, vm_boot_seconds: float) -> None:
    """Run the stack in the foreground until Ctrl-C; exit code 1 if something died."""
    ui = StackConsole()
    logging.basicConfig(level=logging.INFO, handlers=[ui.logging_handler()], force=True)
    try:
        code = asyncio.run(_run(provider, state_dir, vm_boot_seconds, ui))
    except StackError as error:
        ui.error(str(error))
        code = 1
    if code:
        raise SystemExit(code)


async def _run(provider: str, state_dir: Path, vm_boot_seconds: float, ui: StackConsole) -> int:
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
    failed = asyncio.create_task(handle.failed.wait())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (failed, stopping):
        task.cancel()
    if handle.failure:
        ui.error(f"{handle.failure}\nstopping the stack")
    else:
        ui.note("stopping the stack")
    await handle.stop()
    ui.note("stopped; nothing left running")
    return 1 if handle.failure else 0
