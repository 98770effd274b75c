"""The real `cloudkit fulfillment-controller` process for tests, and the cluster it acts on.

The controller reaches the fulfillment service over HTTPS with a ServiceAccount token in a file
(as in a pod) and a hub's cluster through a kubeconfig in its `--hub-kubeconfigs` directory,
named as the hub's `kubeconfig_ref`. Each test gets a namespace of its own (the hub's and the
Lease's), so controllers of different tests never meet.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest
from tests.harness.fulfillment import CLOUDKIT, FulfillmentService


def kube_api(kubeconfig: Path) -> Any:
    """The synchronous client on a kubeconfig (untyped: its calls take plain dicts)."""
    return config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]


def install_crd(kubeconfig: Path) -> None:
    """The ComputeInstance CRD (already there is fine)."""
    extensions: Any = client.ApiextensionsV1Api(kube_api(kubeconfig))
    try:
        extensions.create_custom_resource_definition(crd_manifest())
    except ApiException as error:
        if error.status != 409:
            raise


def new_namespace(kubeconfig: Path, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core: Any = client.CoreV1Api(kube_api(kubeconfig))
    core.create_namespace({"metadata": {"name": name}})
    return name


def resources_of(kubeconfig: Path, namespace: str, record_id: str) -> list[dict[str, Any]]:
    """The ComputeInstances labelled with a record's id."""
    custom: Any = client.CustomObjectsApi(kube_api(kubeconfig))
    listed = custom.list_namespaced_custom_object(
        names.GROUP,
        names.VERSION,
        namespace,
        names.PLURAL,
        label_selector=f"{names.INSTANCE_UUID_LABEL}={record_id}",
    )
    return list(listed.get("items") or [])


def secret_of(kubeconfig: Path, namespace: str, name: str) -> client.V1Secret | None:
    try:
        return client.CoreV1Api(kube_api(kubeconfig)).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def lease_holder(kubeconfig: Path, namespace: str, name: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(kube_api(kubeconfig)).read_namespaced_lease(
            name, namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return (lease.spec.holder_identity if lease.spec else None) or None


LEASE_NAME = "cloudkit-fulfillment-controller-leader"


@dataclass
class ControllerProcess:
    """One controller replica; `log` is what it said (one line per action it took)."""

    directory: Path
    service: FulfillmentService
    token: str
    kubeconfig: Path
    lease_namespace: str
    identity: str
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    hubs_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.hubs_dir = self.directory / "hubs"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.identity}.log"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def give_hub(self, ref: str) -> None:
        """Let this controller act on the test's cluster under the name `ref`."""
        self.hubs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.kubeconfig, self.hubs_dir / ref)

    def start(self) -> None:
        self.hubs_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.directory / "token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        args = [
            str(CLOUDKIT),
            "fulfillment-controller",
            "--address",
            self.service.url,
            "--ca-file",
            str(self.service.ca_file),
            "--token-file",
            str(token_file),
            "--hub-kubeconfigs",
            str(self.hubs_dir),
            "--kubeconfig",
            str(self.kubeconfig),
            "--lease-namespace",
            self.lease_namespace,
            "--identity",
            self.identity,
            "--rewatch-seconds",
            "0.5",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
