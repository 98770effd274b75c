"""A started stack for blocking tests, and more `cloudkit operator` processes started as it starts
its own, with other settings.

The stack is `stack_lab.open_lab` (the product's `start_stack`) run on an event-loop thread, since
these tests block: its operator runs under deploy/operator's ServiceAccount (checked when the lab
opens), its automation service is the AWX-compatible one with simulated job templates unless a
test says otherwise. A simulated provision or deprovision job runs `run_seconds`, or as long as
the instance's annotation `simulation.cloudkit.openshift.io/<effects>-seconds` says (see
`seconds`), so a test can keep one instance's job running until it acts.

An operator a test starts is the stack's own command line, environment and working directory
(read from /proc), with the test's overrides and ports of its own: the same identity, so it
runs with exactly the permissions a deployment grants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes
import yaml

from cloudkit.api import names
from cloudkit.local.automation.simulation import run_seconds_annotation
from cloudkit.local.stack.operator_account import kubeconfig_username, service_account_username
from cloudkit.local.stack.ports import free_port
from tests.harness import kube_clients
from tests.harness.in_process import reconciler_stack
from tests.harness.stack_lab import NAMESPACE, Lab, open_lab
from tests.waiting import until_sync

T = TypeVar("T")

SIMULATED_JOBS: dict[str, Any] = {"run_seconds": 0.5, "run_seconds_from_annotation": True}
START_TIMEOUT_S = 180.0
"""A deadline for liveness, not a speed claim: on a loaded 2-core machine importing the operator
alone was seen taking 53 s of wall time (5 s of CPU); a healthy operator ends the wait at once."""


def seconds(effects: str, value: float) -> dict[str, str]:
    """The annotation that makes this instance's simulated `effects` job run `value` seconds."""
    return {run_seconds_annotation(effects): str(value)}


class LoopThread:
    """An event loop on a daemon thread, for the stack the blocking tests talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    result: T | None = until_sync(check, bool, within=timeout, what=what, interval=interval)
    assert result is not None
    return result


@dataclass
class Cluster:
    """Blocking clients of the stack's API server for the tests (the admin's identity)."""

    api: kubernetes.client.ApiClient
    kubeconfig: Path
    """The admin's."""
    operator_kubeconfig: Path
    """The operator's: a token of deploy/operator's ServiceAccount."""

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(
                    names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name
                ),
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def create(self, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"templateID": "tests_vm"},
        }
        return cast(
            dict[str, Any],
            self.custom.create_namespaced_custom_object(
                names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, body
            ),
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name
        )

    def events(self, name: str) -> list[Any]:
        core = kubernetes.client.CoreV1Api(self.api)
        listed = core.list_namespaced_event(NAMESPACE)
        return [e for e in listed.items if e.involved_object.name == name]


@dataclass
class AutomationService:
    """The stack's automation service as its AWX API shows it (the write token, as AAP's)."""

    url: str
    token_file: Path

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def jobs(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/v2/jobs/?page_size=200",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
        return list(body["results"])


@dataclass
class Operator:
    """A `cloudkit operator` a test started."""

    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class OperatorStack:
    loop: LoopThread
    lab: Lab
    cluster: Cluster
    automation: AutomationService

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (the user's, as `cloudkit up` writes it)."""
        return self.lab.handle.kubeconfig

    # --- operators the tests start -----------------------------------------------------------

    def operator_env(self, **overrides: str) -> dict[str, str]:
        """The stack operator's environment with ports of its own and `overrides`."""
        return {
            **self.lab.specs["operator"].env,
            "CLOUDKIT_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "CLOUDKIT_HEALTH_ADDRESS": f"127.0.0.1:{free_port()}",
            **overrides,
        }

    def operator_argv(self) -> list[str]:
        return list(self.lab.specs["operator"].argv)

    def start_operator(self, env: dict[str, str], log_path: Path) -> Operator:
        """The stack's operator command with `env` (see `operator_env`), logging to a file."""
        assert_service_account(self.cluster.operator_kubeconfig)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                self.operator_argv(),
                env=env,
                cwd=self.lab.specs["operator"].cwd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return Operator(process, log_path, env)

    def stop_stack_operator(self) -> None:
        """The stack's own operator stopped for good (not restarted): the tests' act alone."""
        if not self.lab.child("operator").stopping:
            self.loop.run(self.lab.stop_child("operator"))

    # --- the stack's own operator -------------------------------------------------------------

    def stack_operator_healthy(self) -> bool:
        return healthy_at(self.lab.handle.health_url)

    def kill_stack_operator(self) -> int:
        """SIGKILL the stack's operator: the stack starts it again (back-off, same identity), as
        a kubelet restarts a container. Its restarts so far, before this one."""
        operators = self.lab.handle.operators
        assert operators is not None
        replica = operators.replicas["operator"]
        restarts = replica.restarts
        with contextlib.suppress(ProcessLookupError):
            os.kill(replica.child.pid, signal.SIGKILL)
        return restarts

    def stack_operator_restarts(self) -> int:
        operators = self.lab.handle.operators
        assert operators is not None
        return operators.replicas["operator"].restarts

    # --- the automation service's templates ---------------------------------------------------

    def edit_templates(self, edit: Callable[[list[dict[str, Any]]], None]) -> None:
        """The automation service's templates file changed by `edit` (its entries, in place),
        and the service started again on it, on the same state directory and port: what an
        administrator does to add or change an AAP job template."""
        argv = self.lab.specs["automation"].argv
        templates = Path(argv[argv.index("--templates") + 1])

        self.loop.run(self.lab.stop_child("automation"))
        entries = yaml.safe_load(templates.read_text())
        edit(entries)
        templates.write_text(yaml.safe_dump(entries, sort_keys=False))  # keeps its 0600
        self.loop.run(self.lab.restart_automation())


def healthy_at(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def healthy(operator: Operator) -> bool:
    """The operator answers on its health endpoint; an AssertionError with its log if it exited."""
    if operator.process.poll() is not None:
        raise AssertionError(
            f"operator exited with {operator.process.returncode}:\n{operator.log()}"
        )
    return healthy_at(f"http://{operator.env['CLOUDKIT_HEALTH_ADDRESS']}/healthz")


def stop_operator(operator: Operator) -> None:
    if operator.process.poll() is None:
        operator.process.terminate()
        try:
            operator.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait(timeout=5)


def assert_service_account(kubeconfig: Path) -> None:
    """The guard: an operator in these tests runs as deploy/operator's ServiceAccount, never
    with the admin token (which would hide a missing RBAC rule)."""
    who = asyncio.run(kubeconfig_username(kubeconfig))
    expected = service_account_username()
    assert who == expected, f"the operator would run as {who!r}, not as {expected!r}"


@contextlib.contextmanager
def operator_stack(
    state_dir: Path,
    *,
    simulated_jobs: Mapping[str, Any] | None = SIMULATED_JOBS,
    with_fulfillment: bool = False,
    vm_boot_seconds: float = 0.2,
    env: Mapping[str, str] | None = None,
) -> Iterator[OperatorStack]:
    """A started stack (AAP direct, its operator running) on a loop thread, for a module."""
    loop = LoopThread()
    opened = open_lab(
        state_dir,
        vm_boot_seconds=vm_boot_seconds,
        env=env,
        simulated_jobs=simulated_jobs,
        with_fulfillment=with_fulfillment,
    )
    try:
        lab = loop.run(opened.__aenter__())
        try:
            api = kube_clients.api_client(lab.handle.kubeconfig)
            cluster = Cluster(api, lab.handle.kubeconfig, lab.operator_kubeconfig())
            automation = AutomationService(
                lab.handle.automation_url, lab.handle.automation_token_file
            )
            try:
                yield OperatorStack(loop, lab, cluster, automation)
            finally:
                api.close()  # type: ignore[no-untyped-call]
        finally:
            loop.run(opened.__aexit__(None, None, None))
    finally:
        loop.close()


@contextlib.contextmanager
def cluster_without_operator(state_dir: Path) -> Iterator[Cluster]:
    """A stack without an operator (`in_process.reconciler_stack`) on a loop thread, and the
    operator's ServiceAccount kubeconfig for it: for tests that drive a part of the operator
    themselves."""
    loop = LoopThread()
    opened = reconciler_stack(state_dir)
    try:
        shared = loop.run(opened.__aenter__())
        try:
            api = kube_clients.api_client(shared.stack.kubeconfig)
            try:
                yield Cluster(api, shared.stack.kubeconfig, shared.kubeconfig)
            finally:
                api.close()  # type: ignore[no-untyped-call]
        finally:
            loop.run(opened.__aexit__(None, None, None))
    finally:
        loop.close()
