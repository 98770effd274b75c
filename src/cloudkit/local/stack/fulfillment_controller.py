"""The stack's fulfillment controller: its ServiceAccount and rights, the stack's own cluster
registered as the hub `local`, and the `cloudkit fulfillment-controller` child.

The controller runs as it is deployed: a ServiceAccount (`CONTROLLER_ACCOUNT`) that the service
trusts as an admin (`--admin`), a token of it in a file re-read on every call, a directory of
hub kubeconfigs whose one entry is this cluster seen through that same account, and a Lease in
its own namespace. Its rights on the cluster are only what it does there: ComputeInstances and
their user data Secrets in the instance namespace, and its Lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.fulfillment.client import ApiError, FulfillmentClient
from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path
from cloudkit.local.stack.operator_account import TOKEN_EXPIRATION_S, token_kubeconfig
from cloudkit.local.stack.procs import (
    START_TIMEOUT_S,
    Child,
    ChildFailed,
    LogSink,
    cloudkit_command,
    spawn,
)

CONTROLLER_NAMESPACE = "cloudkit-fulfillment-system"
CONTROLLER_NAME = "cloudkit-fulfillment-controller"
CONTROLLER_ACCOUNT = f"{CONTROLLER_NAMESPACE}:{CONTROLLER_NAME}"
"""NAMESPACE:NAME, as the service's `--admin` takes it (deploy/fulfillment names the same)."""
HUB_REF = "local"
"""The stack's own cluster: the hub's `kubeconfig_ref` and its file in the hubs directory."""
LEADING = "leading: reconciling records"
"""The controller's line once it holds the Lease (and so reconciles)."""
RBAC = "rbac.authorization.k8s.io"
# Resync rarely: the event stream carries every change, a re-list after a broken stream the rest.
RESYNC_S = "600"
REWATCH_S = "1"


class ControllerStartError(RuntimeError):
    """The controller's account, hub or process could not be set up; the message is for people."""


@dataclass(frozen=True)
class ControllerPlaces:
    """Where the controller's files are (under DIR/fulfillment-controller)."""

    directory: Path

    @property
    def token_file(self) -> Path:
        return self.directory / "token"

    @property
    def hubs(self) -> Path:
        return self.directory / "hubs"

    @property
    def kubeconfig(self) -> Path:
        """The Lease's cluster: this one, as the controller's account."""
        return self.hubs / HUB_REF


def _rules(namespace: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, rules) of the controller's Roles: what it does there, nothing more."""
    return [
        (
            namespace,
            [
                {
                    "apiGroups": [names.GROUP],
                    "resources": [names.PLURAL],
                    "verbs": ["get", "list", "watch", "create", "patch", "delete"],
                },
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]},
            ],
        ),
        (
            CONTROLLER_NAMESPACE,
            [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch"],
                }
            ],
        ),
    ]


async def _ensure(kube: KubeClient, collection: str, body: Mapping[str, Any]) -> None:
    try:
        await kube.create(collection, body)
    except KubeError as error:
        if error.status != 409:  # a restarted stack finds what it made before
            raise


async def prepare_controller_account(
    admin_kubeconfig: Path, places: ControllerPlaces, instance_namespace: str
) -> None:
    """The ServiceAccount, its Roles and RoleBindings, and DIR/…/token and hubs/local (0600)."""
    try:
        token = await _issue_token(admin_kubeconfig, instance_namespace)
    except KubeError as error:
        raise ControllerStartError(f"the fulfillment controller's account: {error}") from error
    _write_credentials(places, admin_kubeconfig, token)


def _write_credentials(places: ControllerPlaces, admin_kubeconfig: Path, token: str) -> None:
    private_dir(places.directory)  # mkdir's parents would get the umask's mode, not 0700
    private_dir(places.hubs)
    write_private(places.token_file, token + "\n")
    write_private(places.kubeconfig, token_kubeconfig(admin_kubeconfig.read_text(), token))


async def _issue_token(admin_kubeconfig: Path, instance_namespace: str) -> str:
    core = ("", "v1")
    async with KubeClient.from_kubeconfig(admin_kubeconfig) as kube:
        await _ensure(
            kube,
            resource_path(*core, "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}},
        )
        await _ensure(
            kube,
            resource_path(*core, "serviceaccounts", namespace=CONTROLLER_NAMESPACE),
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": CONTROLLER_NAME, "namespace": CONTROLLER_NAMESPACE},
            },
        )
        for namespace, rules in _rules(instance_namespace):
            meta = {"name": CONTROLLER_NAME, "namespace": namespace}
            await _ensure(
                kube,
                resource_path(RBAC, "v1", "roles", namespace=namespace),
                {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": meta, "rules": rules},
            )
            await _ensure(
                kube,
                resource_path(RBAC, "v1", "rolebindings", namespace=namespace),
                {
                    "apiVersion": f"{RBAC}/v1",
                    "kind": "RoleBinding",
                    "metadata": meta,
                    "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": CONTROLLER_NAME},
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "name": CONTROLLER_NAME,
                            "namespace": CONTROLLER_NAMESPACE,
                        }
                    ],
                },
            )
        account = resource_path(
            *core, "serviceaccounts", namespace=CONTROLLER_NAMESPACE, name=CONTROLLER_NAME
        )
        issued = await kube.create(
            f"{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_EXPIRATION_S},
            },
        )
    return str(issued["status"]["token"])


async def register_hub(
    address: str, ca_file: Path, places: ControllerPlaces, namespace: str
) -> str:
    """The hub `local` (this cluster, `namespace`), created unless a restarted stack's service
    already has it; its id. Registered as the controller's account, an admin of the service."""
    try:
        return await _hub_id(address, ca_file, places.token_file, namespace)
    except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
        raise ControllerStartError(f"registering the hub {HUB_REF!r}: {error}") from error


async def _hub_id(address: str, ca_file: Path, token_file: Path, namespace: str) -> str:
    async with FulfillmentClient(
        address, lambda: token_file.read_text().strip(), ca_file=ca_file, private=True
    ) as api:
        for hub in await api.list_all("hubs"):
            spec = hub.get("spec") or {}
            if spec.get("kubeconfig_ref") == HUB_REF and spec.get("namespace") == namespace:
                return str(hub["id"])
        created = await api.create(
            {
                "metadata": {"name": HUB_REF},
                "spec": {"kubeconfig_ref": HUB_REF, "namespace": namespace},
            },
            "hubs",
        )
    return str(created["id"])


async def start_controller(
    *,
    address: str,
    ca_file: Path,
    places: ControllerPlaces,
    env: Mapping[str, str],
    logs: Path,
    sink: LogSink | None,
    children: list[Child],
) -> Child:
    """`cloudkit fulfillment-controller`, appended to `children` as soon as it runs
    (`controller_leads` waits for it)."""
    child = await spawn(
        "controller",
        cloudkit_command(
            "fulfillment-controller",
            "--address",
            address,
            "--ca-file",
            str(ca_file),
            "--token-file",
            str(places.token_file),
            "--hub-kubeconfigs",
            str(places.hubs),
            "--kubeconfig",
            str(places.kubeconfig),
            "--lease-namespace",
            CONTROLLER_NAMESPACE,
            "--identity",
            "controller",
            "--resync-seconds",
            RESYNC_S,
            "--rewatch-seconds",
            REWATCH_S,
        ),
        env=env,
        log_dir=logs,
        sink=sink,
    )
    children.append(child)
    return child


async def controller_leads(child: Child) -> None:
    """Until the controller holds its Lease (it takes a free one at once) and reconciles."""
    try:
        await child.wait_for_line(lambda line: LEADING in line, START_TIMEOUT_S)
    except TimeoutError as error:
        raise ControllerStartError(
            f"controller did not lead within {START_TIMEOUT_S:.0f}s"
        ) from error
    except ChildFailed as error:
        raise ControllerStartError(str(error)) from error
