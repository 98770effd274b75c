"""The RBAC rules table on plain data: matching, bindings, scope, and the 403 wording."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.local.apiserver import authz, requestinfo
from cloudkit.local.apiserver.authn import parse_service_account, service_account_user
from cloudkit.local.apiserver.authz import Attributes, UserInfo

BOT = service_account_user("ops", "bot")
ALICE = UserInfo("alice", ("devs", authz.AUTHENTICATED))


def _meta(name: str, namespace: str = "") -> dict[str, str]:
    return {"name": name, "namespace": namespace} if namespace else {"name": name}


POLICY = authz.policy_from_objects(
    roles=[
        {
            "metadata": _meta("leases", "ops"),
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "verbs": ["get", "update"]}],
        },
    ],
    cluster_roles=[
        {
            "metadata": _meta("ci-reader"),
            "rules": [
                {"apiGroups": ["cloudkit.openshift.io"], "resources": ["computeinstances"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["cloudkit.openshift.io"], "resources": ["computeinstances/status"],
                 "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"],
                 "verbs": ["get"]},
                {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]},
            ],
        },
        {"metadata": _meta("everything"), "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"metadata": _meta("any-status"), "rules": [
            {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}]},
    ],
    role_bindings=[
        {"metadata": _meta("bot-leases", "ops"), "roleRef": {"kind": "Role", "name": "leases"},
         "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}]},
        {"metadata": _meta("devs-everything", "sandbox"),
         "roleRef": {"kind": "ClusterRole", "name": "everything"},
         "subjects": [{"kind": "Group", "name": "devs"}]},
    ],
    cluster_role_bindings=[
        {"metadata": _meta("bot-ci"), "roleRef": {"kind": "ClusterRole", "name": "ci-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}]},
        {"metadata": _meta("alice-status"),
         "roleRef": {"kind": "ClusterRole", "name": "any-status"},
         "subjects": [{"kind": "User", "name": "alice"}]},
    ],
)  # fmt: skip


def _res(user: UserInfo, verb: str, group: str, resource: str, **kw: Any) -> Attributes:
    return Attributes(user, verb, api_group=group, resource=resource, **kw)


CI = "cloudkit.openshift.io"
CASES = [
    # ClusterRoleBinding: every namespace; exact verbs only.
    (_res(BOT, "list", CI, "computeinstances", namespace="a"), True),
    (_res(BOT, "watch", CI, "computeinstances"), True),
    (_res(BOT, "delete", CI, "computeinstances", namespace="a", name="x"), False),
    # A subresource needs its own rule; the resource's rule does not cover it.
    (_res(BOT, "patch", CI, "computeinstances", subresource="status", name="x"), True),
    (_res(BOT, "patch", CI, "computeinstances", name="x"), False),
    (_res(BOT, "get", CI, "computeinstances", subresource="status", name="x"), False),
    # The group must match too.
    (_res(BOT, "list", "other.io", "computeinstances"), False),
    # resourceNames narrow: the named object only, never a list or create.
    (_res(BOT, "get", "", "configmaps", namespace="a", name="one"), True),
    (_res(BOT, "get", "", "configmaps", namespace="a", name="two"), False),
    (_res(BOT, "list", "", "configmaps", namespace="a"), False),
    # RoleBinding to a Role: only in the binding's namespace.
    (_res(BOT, "update", "coordination.k8s.io", "leases", namespace="ops", name="l"), True),
    (_res(BOT, "update", "coordination.k8s.io", "leases", namespace="other", name="l"), False),
    (_res(BOT, "update", "coordination.k8s.io", "leases", name="l"), False),
    # RoleBinding to a ClusterRole via a Group: wildcards, but in that namespace only.
    (_res(ALICE, "delete", "apps", "deployments", namespace="sandbox", name="d"), True),
    (_res(ALICE, "create", "", "pods", namespace="sandbox", subresource="exec"), True),
    (_res(ALICE, "delete", "apps", "deployments", namespace="prod", name="d"), False),
    # `*/status` matches the status subresource of anything, and nothing else.
    (_res(ALICE, "get", "apps", "deployments", namespace="prod", subresource="status"), True),
    (_res(ALICE, "get", "apps", "deployments", namespace="prod"), False),
    # Non-resource URLs: exact or `prefix*`, through cluster-wide bindings only.
    (Attributes(BOT, "get", resource_request=False, path="/metrics"), True),
    (Attributes(BOT, "get", resource_request=False, path="/debug/pprof"), True),
    (Attributes(BOT, "post", resource_request=False, path="/metrics"), False),
    (Attributes(ALICE, "get", resource_request=False, path="/metrics"), False),
    # Bootstrap policy for every authenticated user: discovery and self reviews.
    (Attributes(ALICE, "get", resource_request=False, path="/apis/apps/v1"), True),
    (_res(ALICE, "create", "authorization.k8s.io", "selfsubjectaccessreviews"), True),
    (Attributes(UserInfo("anon"), "get", resource_request=False, path="/api"), False),
    # system:masters is allowed everything without a rule.
    (_res(UserInfo("root", (authz.MASTERS,)), "escalate", "x", "y"), True),
    # Another ServiceAccount of the same name elsewhere is someone else.
    (_res(service_account_user("dev", "bot"), "list", CI, "computeinstances"), False),
]


@pytest.mark.parametrize(("attrs", "allowed"), CASES)
def test_rules_table(attrs: Attributes, allowed: bool) -> None:
    assert authz.authorize(POLICY, attrs)[0] is allowed


def test_the_reason_names_the_binding() -> None:
    _, reason = authz.authorize(POLICY, _res(BOT, "list", CI, "computeinstances"))
    assert reason == 'RBAC: allowed by ClusterRoleBinding "bot-ci" of ClusterRole "ci-reader"'


def test_forbidden_messages_in_kube_apiservers_words() -> None:
    namespaced = _res(BOT, "create", "", "configmaps", namespace="ops")
    assert authz.forbidden_message(namespaced) == (
        'configmaps is forbidden: User "system:serviceaccount:ops:bot" cannot create resource '
        '"configmaps" in API group "" in the namespace "ops"'
    )
    named = _res(BOT, "patch", CI, "computeinstances", name="x", subresource="status")
    assert authz.forbidden_message(named) == (
        'computeinstances.cloudkit.openshift.io "x" is forbidden: User '
        '"system:serviceaccount:ops:bot" cannot patch resource "computeinstances/status" in API '
        'group "cloudkit.openshift.io" at the cluster scope'
    )
    path = Attributes(BOT, "get", resource_request=False, path="/metrics")
    assert authz.forbidden_message(path) == (
        'forbidden: User "system:serviceaccount:ops:bot" cannot get path "/metrics"'
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/configmaps", {}, ("list", "", "configmaps", "", "", "a")),
        ("GET", "/api/v1/namespaces/a/configmaps", {"watch": "true"},
         ("watch", "", "configmaps", "", "", "a")),
        ("GET", "/api/v1/namespaces/a/configmaps", {"fieldSelector": "metadata.name=c"},
         ("list", "", "configmaps", "", "c", "a")),
        ("DELETE", "/apis/apps/v1/namespaces/a/deployments", {},
         ("deletecollection", "apps", "deployments", "", "", "a")),
        ("PATCH", f"/apis/{CI}/v1/namespaces/a/computeinstances/x/status", {},
         ("patch", CI, "computeinstances", "status", "x", "a")),
        ("GET", "/api/v1/namespaces/a", {}, ("get", "", "namespaces", "", "a", "a")),
        ("PUT", "/api/v1/namespaces/a/finalize", {},
         ("update", "", "namespaces", "finalize", "a", "a")),
        ("POST", "/api/v1/namespaces/a/serviceaccounts/s/token", {},
         ("create", "", "serviceaccounts", "token", "s", "a")),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/r", {},
         ("get", "rbac.authorization.k8s.io", "clusterroles", "", "r", "")),
    ],
)  # fmt: skip
def test_request_info(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    attrs = requestinfo.resolve(ALICE, method, path, query)
    assert attrs.resource_request
    got = (attrs.verb, attrs.api_group, attrs.resource, attrs.subresource, attrs.name)
    assert (*got, attrs.namespace) == expected


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis/apps/v1", "/version", "/openapi/v3"])
def test_non_resource_paths(path: str) -> None:
    attrs = requestinfo.resolve(ALICE, "GET", path, {})
    assert not attrs.resource_request and attrs.verb == "get" and attrs.path == path


def test_service_account_names() -> None:
    assert parse_service_account("system:serviceaccount:ops:bot") == ("ops", "bot")
    assert parse_service_account("system:serviceaccount:ops") is None
    assert parse_service_account("alice") is None
    assert BOT.groups == (
        "system:serviceaccounts", "system:serviceaccounts:ops", authz.AUTHENTICATED,
    )  # fmt: skip


def test_malformed_stored_objects_grant_nothing_and_never_raise() -> None:
    """Objects stored before validation (or by hand) are read fail-closed: a string where a
    list belongs neither matches by substring nor becomes a wildcard; a broken binding is
    skipped instead of failing every request."""
    policy = authz.policy_from_objects(
        roles=[],
        cluster_roles=[
            {"metadata": _meta("substring"), "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": "one-two",
                 "verbs": ["get"]}]},
            {"metadata": _meta("star-status"), "rules": [
                {"apiGroups": ["*"], "resources": "*/status", "verbs": ["get"]}]},
            {"metadata": _meta("not-a-list"), "rules": "everything"},
        ],
        role_bindings=[{"metadata": _meta("broken", "ops"), "roleRef": "x", "subjects": "y"}],
        cluster_role_bindings=[
            {"metadata": _meta(name), "roleRef": {"kind": "ClusterRole", "name": name},
             "subjects": [{"kind": "User", "name": "alice"}]}
            for name in ("substring", "star-status", "not-a-list")
        ] + [{"metadata": {}, "subjects": [7]}, {"roleRef": {"name": "x"}}],
    )  # fmt: skip
    asks = [
        Attributes(ALICE, "get", resource="configmaps", name="one", namespace="ops"),
        Attributes(ALICE, "get", resource="configmaps", name="two", namespace="ops"),
        Attributes(ALICE, "get", api_group="apps", resource="deployments", name="d",
                   namespace="ops"),
        Attributes(ALICE, "get", resource="pods", subresource="status", namespace="ops"),
    ]  # fmt: skip
    assert [authz.authorize(policy, a)[0] for a in asks] == [False] * len(asks)
