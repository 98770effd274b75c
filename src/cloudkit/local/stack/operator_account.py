"""The operator's own identity in the local stack: the ServiceAccount and RBAC of
deploy/operator, applied from those very files, and a kubeconfig carrying a token of that
ServiceAccount, so the operator runs with exactly the permissions a real deployment grants.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cloudkit.local.private import write_private
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path

log = logging.getLogger(__name__)

# The source checkout's deploy/operator (the stack runs from it; a wheel does not carry it).
DEPLOY_DIR = Path(__file__).resolve().parents[4] / "deploy" / "operator"
# A year: the local stack may run for long, and nothing rotates the token while it does.
TOKEN_EXPIRATION_S = 365 * 24 * 3600
RBAC = "rbac.authorization.k8s.io"
# kind → (group, version, plural, namespaced) for what the RBAC part of deploy/operator holds.
KINDS: dict[str, tuple[str, str, str, bool]] = {
    "Namespace": ("", "v1", "namespaces", False),
    "ServiceAccount": ("", "v1", "serviceaccounts", True),
    "ClusterRole": (RBAC, "v1", "clusterroles", False),
    "ClusterRoleBinding": (RBAC, "v1", "clusterrolebindings", False),
    "Role": (RBAC, "v1", "roles", True),
    "RoleBinding": (RBAC, "v1", "rolebindings", True),
}


def account_documents(deploy_dir: Path) -> list[dict[str, Any]]:
    """The identity part of the kustomization: its files' documents of the kinds above (the
    Deployment and the CRD directory are not the stack's business)."""
    kustomization = yaml.safe_load((deploy_dir / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources") or []:
        path = deploy_dir / entry
        if path.is_file():
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in KINDS]
    return docs


def service_account(docs: list[dict[str, Any]]) -> tuple[str, str]:
    """(namespace, name) of the one ServiceAccount."""
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    return account["metadata"]["namespace"], account["metadata"]["name"]


def service_account_username(deploy_dir: Path = DEPLOY_DIR) -> str:
    """The user name the API server gives the operator's ServiceAccount."""
    namespace, name = service_account(account_documents(deploy_dir))
    return f"system:serviceaccount:{namespace}:{name}"


async def kubeconfig_username(kubeconfig: Path) -> str:
    """Who the API server takes the kubeconfig's credentials for (a SelfSubjectReview, as
    `kubectl auth whoami`); how callers prove an operator is not handed the admin's."""
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        review = await kube.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    return str(review["status"]["userInfo"]["username"])


def _paths(doc: dict[str, Any]) -> tuple[str, str]:
    group, version, plural, namespaced = KINDS[doc["kind"]]
    meta = doc["metadata"]
    namespace = meta.get("namespace") if namespaced else None
    collection = resource_path(group, version, plural, namespace=namespace)
    return collection, resource_path(group, version, plural, namespace=namespace, name=meta["name"])


def token_kubeconfig(admin_kubeconfig: str, token: str) -> str:
    """The admin kubeconfig with every user's credentials replaced by `token`."""
    config = yaml.safe_load(admin_kubeconfig)
    for user in config.get("users") or []:
        user["user"] = {"token": token}
    return yaml.safe_dump(config, sort_keys=False)


async def _apply(kube: KubeClient, doc: dict[str, Any]) -> None:
    """Create, or replace what is stored, so edited files take effect on the next start."""
    collection, item = _paths(doc)
    try:
        await kube.create(collection, doc)
    except KubeError as error:
        if error.status != 409:
            raise
        stored = await kube.get(item) or {}
        body = {**doc, "metadata": {**doc["metadata"], **_version(stored)}}
        await kube.request("PUT", item, body=body)


def _version(stored: dict[str, Any]) -> dict[str, Any]:
    rv = (stored.get("metadata") or {}).get("resourceVersion")
    return {"resourceVersion": rv} if rv else {}


def _documents(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    # Namespaces first: the namespaced objects go into them.
    yield from (d for d in docs if d["kind"] == "Namespace")
    yield from (d for d in docs if d["kind"] != "Namespace")


async def prepare_operator_kubeconfig(
    admin_kubeconfig: Path, target: Path, deploy_dir: Path = DEPLOY_DIR
) -> Path:
    """Apply deploy/operator's ServiceAccount and RBAC with the admin kubeconfig and write a
    kubeconfig (0600) with a token of that ServiceAccount; `admin_kubeconfig` itself when
    deploy/operator is not at hand (an installed wheel), said in the log."""
    if not (deploy_dir / "kustomization.yaml").is_file():
        log.warning(
            "deploy/operator not found (installed without the source tree): the operator runs "
            "with the admin kubeconfig, not under its ServiceAccount"
        )
        return admin_kubeconfig
    docs = account_documents(deploy_dir)
    namespace, name = service_account(docs)
    async with KubeClient.from_kubeconfig(admin_kubeconfig) as kube:
        for doc in _documents(docs):
            await _apply(kube, doc)
        path = resource_path("", "v1", "serviceaccounts", namespace=namespace, name=name)
        issued = await kube.create(
            f"{path}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_EXPIRATION_S},
            },
        )
    _write_kubeconfig(admin_kubeconfig, target, issued["status"]["token"])
    return target


def write_token_file(kubeconfig: Path, target: Path) -> Path:
    """The ServiceAccount token of an operator kubeconfig in a file of its own (0600), for the
    operator's feedback to present to the fulfillment API, as a pod presents its projected
    token."""
    config = yaml.safe_load(kubeconfig.read_text())
    (user,) = config.get("users") or []
    write_private(target, str(user["user"]["token"]) + "\n")
    return target


def _write_kubeconfig(admin_kubeconfig: Path, target: Path, token: str) -> None:
    write_private(target, token_kubeconfig(admin_kubeconfig.read_text(), token))
