"""`cloudkit up` runs the operator under the ServiceAccount of deploy/operator: the stack applies
that account and its RBAC from the same files, and the operator's kubeconfig carries a token of
that account (the lifecycle tests of the stack then exercise least privilege)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient
from cloudkit.local.stack.operator_account import (
    DEPLOY_DIR,
    account_documents,
    service_account,
)

pytestmark = pytest.mark.stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[StackHandle]:
    handle = await start_stack(
        provider="aap", state_dir=tmp_path / "state", vm_boot_seconds=0.5, with_fulfillment=False
    )
    try:
        yield handle
    finally:
        await handle.stop()


async def _review(kube: KubeClient, verb: str, resource: str, namespace: str) -> bool:
    group, _, plural = resource.rpartition("/")
    answer = await kube.create(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": plural,
                                         "namespace": namespace}}},
    )  # fmt: skip
    return bool(answer["status"]["allowed"])


def _check_files(stack: StackHandle, kubeconfig: Path) -> None:
    """The operator was started with its own kubeconfig (0600), not the user's admin one."""
    (operator,) = [c for c in stack.children if c.name == "operator"]
    argv = Path(f"/proc/{operator.pid}/cmdline").read_bytes().split(b"\0")
    assert str(kubeconfig).encode() in argv
    assert kubeconfig.stat().st_mode & 0o077 == 0
    user = yaml.safe_load(stack.kubeconfig.read_text())["users"][0]["user"]["token"]
    operator_token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    assert user != operator_token


async def test_the_operator_runs_under_its_service_account(stack: StackHandle) -> None:
    namespace, name = service_account(account_documents(DEPLOY_DIR))
    kubeconfig = stack.state_dir / "apiserver" / "operator.kubeconfig"
    _check_files(stack, kubeconfig)

    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        who = await kube.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
        assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:{name}"
        ns = stack.instance_namespace
        assert await _review(kube, "patch", "cloudkit.openshift.io/computeinstances", ns)
        assert not await _review(kube, "get", "/secrets", ns)
        assert not await _review(kube, "create", "cloudkit.openshift.io/computeinstances", ns)
