"""The operator on a real local stack: API server, automation service, `cloudkit operator`.

The API server and the automation service run in this process, each on its own event-loop
thread (the tests block); the operator is a subprocess configured by environment only, as
`cloudkit up` and a Deployment run it. One stack per module; tests use unique names.

The operator runs under the ServiceAccount of deploy/operator (applied from those files by the
code `cloudkit up` uses), so these tests exercise exactly the permissions a deployment grants;
the tests' own clients keep the admin identity. `start_operator` refuses any other identity.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest

from cloudkit.api import names
from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver
from cloudkit.local.automation.main import AutomationHandle, start_automation_service
from cloudkit.local.stack.operator_account import (
    kubeconfig_username,
    prepare_operator_kubeconfig,
    service_account_username,
)
from cloudkit.local.stack.ports import free_port
from tests.harness import kube_clients
from tests.waiting import until_sync

T = TypeVar("T")

BIN = Path(sys.executable).parent
PLAYBOOKS = Path(__file__).resolve().parents[1] / "integration" / "playbooks"
NAMESPACE = "cloudkit-computeinstance"
PROVISION_TEMPLATE = "cloudkit provision (test)"
DEPROVISION_TEMPLATE = "cloudkit deprovision (test)"
START_TIMEOUT_S = 180.0
"""A deadline for liveness, not a speed claim: on a loaded 2-core machine importing the operator
alone was seen taking 53 s of wall time (5 s of CPU); a healthy operator ends the wait at once."""


class LoopThread:
    """An event loop on a daemon thread, for servers the blocking tests talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
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


def instance_crd() -> dict[str, Any]:
    """The generated CRD when it exists; else an open schema with the same names."""
    crd_file = Path(__file__).resolve().parents[2] / "deploy" / "crds"
    files = sorted(crd_file.glob("*computeinstance*.yaml")) if crd_file.is_dir() else []
    if files:
        import yaml

        loaded: dict[str, Any] = yaml.safe_load(files[0].read_text())
        return loaded
    try:
        from cloudkit.api.crd import crd_manifest
    except ImportError:
        pass
    else:
        manifest: dict[str, Any] = crd_manifest()
        return manifest
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names.PLURAL}.{names.GROUP}"},
        "spec": {
            "group": names.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.KIND,
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": open_object, "status": open_object},
                        }
                    },
                }
            ],
        },
    }


@dataclass
class Cluster:
    """Blocking clients of the local API server for the tests."""

    handle: ApiServerHandle
    api: kubernetes.client.ApiClient
    operator_kubeconfig: Path
    """The operator's: a token of deploy/operator's ServiceAccount (the rest use the admin's)."""

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found = kube_clients.json_object(
                self.custom.get_namespaced_custom_object(
                    names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name
                )
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
        return kube_clients.json_object(
            self.custom.create_namespaced_custom_object(
                names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, body
            )
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
    handle: AutomationHandle

    def jobs(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.handle.url}/v2/jobs/?page_size=200",
            headers={"Authorization": f"Bearer {self.handle.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
        return list(body["results"])


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def cluster(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("apiserver")
    handle = loop_thread.run(start_apiserver(state, bookmark_interval_s=0.5))
    api = kube_clients.api_client(handle.kubeconfig)
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(kube_clients.body(instance_crd()))
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace(kube_clients.body({"metadata": {"name": NAMESPACE}}))
    operator_kubeconfig = loop_thread.run(
        prepare_operator_kubeconfig(handle.kubeconfig, state / "operator.kubeconfig")
    )
    cluster = Cluster(handle, api, operator_kubeconfig)

    def served() -> bool:
        try:
            cluster.custom.list_namespaced_custom_object(
                names.GROUP, names.VERSION, NAMESPACE, names.PLURAL
            )
        except kubernetes.client.ApiException:
            return False
        return True

    wait_until(served, timeout=30, what="the ComputeInstance CRD to be served")
    try:
        yield cluster
    finally:
        api.close()  # type: ignore[no-untyped-call]
        loop_thread.run(handle.stop())


@pytest.fixture(scope="module")
def notification_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def automation(
    loop_thread: LoopThread,
    cluster: Cluster,
    notification_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AutomationService]:
    # The playbooks run as children of this process: kubernetes.core reads this variable.
    previous = os.environ.get("K8S_AUTH_KUBECONFIG")
    os.environ["K8S_AUTH_KUBECONFIG"] = str(cluster.handle.kubeconfig)
    notify = f"http://127.0.0.1:{notification_port}/notifications"
    templates = [
        {
            "name": PROVISION_TEMPLATE,
            "kind": "job_template",
            "playbook": str(PLAYBOOKS / "provision.yml"),
            "inventory": "localhost,",
            "notification": {"url": notify},
        },
        {
            "name": DEPROVISION_TEMPLATE,
            "kind": "job_template",
            "playbook": str(PLAYBOOKS / "deprovision.yml"),
            "inventory": "localhost,",
            "notification": {"url": notify},
        },
    ]
    state = tmp_path_factory.mktemp("automation")
    handle = loop_thread.run(start_automation_service(state, templates))
    try:
        yield AutomationService(handle)
    finally:
        loop_thread.run(handle.stop())
        if previous is None:
            os.environ.pop("K8S_AUTH_KUBECONFIG", None)
        else:
            os.environ["K8S_AUTH_KUBECONFIG"] = previous


def operator_env(
    cluster: Cluster, automation: AutomationService, **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDKIT_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(cluster.operator_kubeconfig),
            "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
            "CLOUDKIT_AAP_URL": automation.handle.url,
            "CLOUDKIT_AAP_TOKEN": automation.handle.token,
            "CLOUDKIT_AAP_PROVISION_TEMPLATE": PROVISION_TEMPLATE,
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": DEPROVISION_TEMPLATE,
            "CLOUDKIT_AAP_STATUS_POLL_INTERVAL": "5s",
            "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": NAMESPACE,
            "CLOUDKIT_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "CLOUDKIT_HEALTH_ADDRESS": f"127.0.0.1:{free_port()}",
        }
    )
    env.update(overrides)
    return env


def assert_service_account(env: dict[str, str]) -> None:
    """The guard: an operator in these tests runs as deploy/operator's ServiceAccount, never
    with the admin token (which would hide a missing RBAC rule)."""
    who = asyncio.run(kubeconfig_username(Path(env["KUBECONFIG"])))
    expected = service_account_username()
    assert who == expected, f"the operator would run as {who!r}, not as {expected!r}"


def start_operator(env: dict[str, str], log_path: Path) -> Operator:
    assert_service_account(env)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN / "cloudkit"), "operator"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Operator(process, log_path, env)


def healthy(operator: Operator) -> bool:
    if operator.process.poll() is not None:
        raise AssertionError(
            f"operator exited with {operator.process.returncode}:\n{operator.log()}"
        )
    url = f"http://{operator.env['CLOUDKIT_HEALTH_ADDRESS']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def stop_operator(operator: Operator) -> None:
    if operator.process.poll() is None:
        operator.process.terminate()
        try:
            operator.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait(timeout=5)


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster,
    automation: AutomationService,
    notification_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    env = operator_env(
        cluster,
        automation,
        CLOUDKIT_NOTIFICATION_ADDRESS=f"127.0.0.1:{notification_port}",
    )
    running = start_operator(env, tmp_path_factory.mktemp("operator") / "operator.log")
    try:
        wait_until(lambda: healthy(running), timeout=START_TIMEOUT_S, what="operator health")
        yield running
    finally:
        stop_operator(running)
        sys.stderr.write(f"\n--- operator log (tail) ---\n{running.log()[-6000:]}\n")
