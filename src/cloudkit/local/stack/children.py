"""Starting the local stack's parts: the API server, the cluster's CRDs and namespace, the
automation backend, the operator, and each one's readiness.

Spawning and waiting only: environments, URLs and tokens' places come in as arguments, computed
by `environment`; the order of things and the handle belong to `supervisor`. A part that cannot
start raises StackError with a message for people.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudkit.api.crd import crd_manifest
from cloudkit.local.private import write_private
from cloudkit.local.stack.backends import (
    Backend,
    BackendError,
    spawn_automation_backend,
    start_eda_backend,
)
from cloudkit.local.stack.environment import HOST, port_of, user_kubeconfig
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.ports import free_port
from cloudkit.local.stack.procs import (
    START_TIMEOUT_S,
    Child,
    ChildFailed,
    LogSink,
    cloudkit_command,
    spawn,
    wait_for_port,
)

CRD_PATH = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
LISTENING = r"listening on (\S+)"
"""The API server's start-up line; it names the URL it serves."""


class StackError(RuntimeError):
    """The stack cannot start or stopped unexpectedly; the message is meant for people."""


async def spawn_apiserver(
    apiserver_dir: Path, *, env: Mapping[str, str], logs: Path, sink: LogSink | None
) -> Child:
    """The API server on a port it picks; `apiserver_url()` waits for it to say which."""
    return await spawn(
        "apiserver",
        cloudkit_command("apiserver", "--state-dir", str(apiserver_dir), "--port", "0"),
        env=env,
        log_dir=logs,
        sink=sink,
    )


async def apiserver_url(apiserver: Child) -> str:
    line = await _expect(apiserver, LISTENING)
    match = re.search(LISTENING, line)
    return match.group(1) if match else ""


async def prepare_cluster(kubeconfig: Path, namespace: str) -> None:
    """The ComputeInstance CRD (established) and the namespace the operator watches."""
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        crd = crd_manifest()
        await kube.ensure(CRD_PATH, crd)
        await kube.ensure(
            resource_path("", "v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )
        from cloudkit.local.kubevirt.simulator import wait_established

        await wait_established(kube, crd["metadata"]["name"])


async def start_backend(
    provider: str,
    *,
    state_dir: Path,
    env: Mapping[str, str],
    logs: Path,
    sink: LogSink | None,
    notification: Mapping[str, Any] | None,
    simulate: Mapping[str, Any] | None = None,
) -> Backend:
    """The automation service (aap; `backend_ready()` waits for it) or the EDA activation
    (eda; ready when this returns). `notification` is the job templates' webhook entry;
    `simulate` makes the service's templates simulated ones (aap only)."""
    if simulate is not None and provider != "aap":
        raise StackError("simulated jobs are a template kind of the automation service (aap)")
    if provider == "aap":
        return await spawn_automation_backend(
            state_dir=state_dir,
            env=dict(env),
            logs=logs,
            sink=sink,
            notification=notification,
            port=free_port(),
            simulate=simulate,
        )
    try:
        return await start_eda_backend(
            state_dir=state_dir, env=dict(env), sink=sink, port=free_port()
        )
    except BackendError as error:
        raise StackError(str(error)) from error


async def backend_ready(backend: Backend) -> None:
    try:
        await backend.wait_ready()
    except BackendError as error:
        raise StackError(str(error)) from error


async def spawn_operator(
    kubeconfig: Path,
    *,
    env: Mapping[str, str],
    logs: Path,
    sink: LogSink | None,
    name: str = "operator",
) -> Child:
    return await spawn(
        name,
        cloudkit_command("operator", "--kubeconfig", str(kubeconfig)),
        env=env,
        log_dir=logs,
        sink=sink,
    )


async def operator_healthy(operator: Child, health_url: str) -> None:
    """Until the operator's health endpoint accepts connections."""
    try:
        await wait_for_port(HOST, port_of(health_url), operator, START_TIMEOUT_S)
    except ChildFailed as error:
        raise StackError(str(error)) from error
    except TimeoutError as error:
        raise StackError(f"operator not healthy within {START_TIMEOUT_S:.0f}s") from error


async def lease_holder(kubeconfig: Path, namespace: str, name: str) -> str | None:
    """Who holds the operators' Lease now (None: nobody, or no Lease yet)."""
    lease = resource_path("coordination.k8s.io", "v1", "leases", namespace=namespace, name=name)
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        found = await kube.get(lease)
    holder = ((found or {}).get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


async def operator_leads(
    kubeconfig: Path, lease: tuple[str, str], replicas: Mapping[str, Child]
) -> str:
    """Until one of `replicas` (by name) holds the Lease; its name."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        holder = await lease_holder(kubeconfig, *lease)
        if holder is not None and holder in replicas:
            return holder
        for child in replicas.values():
            if child.process.returncode is not None:
                raise StackError(child.describe_exit())
        if loop.time() > deadline:
            raise StackError(f"no operator replica took the Lease within {START_TIMEOUT_S:.0f}s")
        await asyncio.sleep(0.2)


def publish_kubeconfig(source: Path, target: Path, namespace: str) -> None:
    """The user's kubeconfig, written last: its presence means the stack is ready."""
    tmp = target.with_suffix(".tmp")
    # 0600 first: it holds the token.
    write_private(tmp, user_kubeconfig(source.read_text(), namespace))
    tmp.replace(target)


async def _expect(child: Child, pattern: str) -> str:
    regex = re.compile(pattern)
    try:
        return await child.wait_for_line(lambda line: bool(regex.search(line)), START_TIMEOUT_S)
    except TimeoutError as error:
        raise StackError(f"{child.name} did not start within {START_TIMEOUT_S:.0f}s") from error
    except ChildFailed as error:
        raise StackError(str(error)) from error
