"""RBAC through unmodified kubectl: TokenRequest, `auth can-i` (with `--as` and `--list`),
`auth whoami`, a forbidden create and a permitted status patch under a ServiceAccount token."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.contract.apiserver.apiserver_client import WIDGETS_CRD

pytestmark = pytest.mark.stack
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]

SA = "system:serviceaccount:default:bot"
RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: bot, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: widget-status, namespace: default}
rules:
  - apiGroups: ["test.cloudkit.dev"]
    resources: ["widgets"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["test.cloudkit.dev"]
    resources: ["widgets/status"]
    verbs: ["get", "patch"]  # kubectl patch --subresource reads it first
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["allowed"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-widget-status, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: widget-status}
subjects: [{kind: ServiceAccount, name: bot, namespace: default}]
"""
WIDGET = """
apiVersion: test.cloudkit.dev/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3, zone: a}
"""


def _as_bot(kubectl: Kubectl) -> Kubectl:
    """kubectl with a token of the `bot` ServiceAccount instead of the admin's."""
    token = kubectl("create", "token", "bot", "--duration=1h", check=True).stdout.strip()
    assert token.count(".") == 2  # a JWT, as upstream's

    def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return kubectl("--token", token, *args, **kwargs)

    return run


def _setup(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(WIDGETS_CRD), check=True)
    kubectl("wait", "--for=condition=established", "crd/widgets.test.cloudkit.dev",
            "--timeout=10s", check=True)  # fmt: skip
    kubectl("apply", "-f", "-", input=RBAC, check=True)
    kubectl("apply", "-f", "-", input=WIDGET, check=True)


def test_service_account_token_is_held_to_its_role(kubectl: Kubectl) -> None:
    _setup(kubectl)
    bot = _as_bot(kubectl)

    assert bot("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == SA
    assert (
        bot("get", "widgets", "-o", "name", check=True).stdout.strip()
        == "widget.test.cloudkit.dev/w1"
    )
    bot("patch", "widget", "w1", "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"Ready"}}', check=True)  # fmt: skip

    denied = bot("create", "configmap", "nope", "--from-literal=a=b")
    assert denied.returncode != 0
    assert (
        'configmaps is forbidden: User "system:serviceaccount:default:bot" cannot create '
        'resource "configmaps" in API group "" in the namespace "default"'
    ) in denied.stderr
    spec_patch = bot("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":4}}')
    assert 'cannot patch resource "widgets" in API group "test.cloudkit.dev"' in spec_patch.stderr
    assert "forbidden" in bot("get", "namespaces").stderr  # cluster scope: a RoleBinding cannot

    # resourceNames narrow a rule: the named object only.
    kubectl("create", "configmap", "allowed", check=True)
    kubectl("create", "configmap", "other", check=True)
    bot("get", "configmap", "allowed", check=True)
    assert 'configmaps "other" is forbidden' in bot("get", "configmap", "other").stderr

    # Impersonation is authorized like any request: the bot may not act as someone else.
    posing = bot("get", "widgets", "--as=alice")
    assert (
        'users "alice" is forbidden: User "system:serviceaccount:default:bot" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    ) in posing.stderr

    # Deleting the ServiceAccount revokes its tokens (bound to its uid).
    kubectl("delete", "serviceaccount", "bot", check=True)
    assert "Unauthorized" in bot("get", "widgets").stderr


def test_auth_can_i_as_the_service_account(kubectl: Kubectl) -> None:
    _setup(kubectl)
    assert kubectl("auth", "can-i", "create", "configmaps").stdout.strip() == "yes"

    def can(*args: str) -> str:
        result = kubectl("auth", "can-i", *args, f"--as={SA}")
        return result.stdout.strip()

    assert can("list", "widgets.test.cloudkit.dev") == "yes"
    assert can("patch", "widgets.test.cloudkit.dev", "--subresource=status") == "yes"
    assert can("patch", "widgets.test.cloudkit.dev") == "no"
    assert can("create", "configmaps") == "no"
    assert can("get", "configmaps/allowed") == "yes"
    assert can("get", "configmaps/other") == "no"
    assert can("list", "widgets.test.cloudkit.dev", "-n", "kube-system") == "no"
    assert can("get", "/version") == "yes"
    assert can("get", "/metrics") == "no"

    listed = kubectl("auth", "can-i", "--list", f"--as={SA}", check=True).stdout
    rows = {line.split()[0]: line for line in listed.splitlines()[1:] if line.strip()}
    assert "widgets.test.cloudkit.dev/status" in rows
    assert "[get patch]" in rows["widgets.test.cloudkit.dev/status"]
    assert "configmaps" in rows and "[allowed]" in rows["configmaps"]
    # The admin may impersonate anyone, groups included.
    kubectl("get", "widgets", f"--as={SA}", "--as-group=system:masters", check=True)


def test_a_token_request_is_checked(kubectl: Kubectl) -> None:
    missing = kubectl("create", "token", "nobody")
    assert 'serviceaccounts "nobody" not found' in missing.stderr
    kubectl("create", "serviceaccount", "short", check=True)
    too_short = kubectl("create", "token", "short", "--duration=60s")
    assert "may not specify a duration less than 10 minutes" in too_short.stderr
