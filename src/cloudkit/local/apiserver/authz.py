"""The RBAC authorizer: a pure rules table over Roles, ClusterRoles and their bindings.

Second step of a request, after authentication and before admission and storage. It follows
kube-apiserver's RBAC authorizer: deny unless some rule bound to the user allows; no deny
rules; `*` as a wildcard for verbs, groups, resources and non-resource URLs; `*/sub` for a
subresource of any resource; `resourceNames` only narrows; a RoleBinding grants only in its
namespace, non-resource URLs only through ClusterRoleBindings. The `system:masters` group
is allowed everything before any rule is read, as upstream's privileged-group short cut.

Stored objects are validated when written (`rbac_validation`), but the table never trusts
them: a rule or binding of the wrong shape (e.g. left from before validation) grants nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """Who is asking: the authenticated (or impersonated) user."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class Attributes:
    """What is asked (kube's authorizer.Attributes): a resource or a non-resource request."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""


@dataclass
class Policy:
    """The RBAC objects as stored: rules per (Cluster)Role and the bindings."""

    roles: dict[tuple[str, str], list[Obj]] = field(default_factory=dict)
    cluster_roles: dict[str, list[Obj]] = field(default_factory=dict)
    role_bindings: list[Obj] = field(default_factory=list)
    cluster_role_bindings: list[Obj] = field(default_factory=list)


# Upstream's bootstrap policy for every authenticated user: system:discovery,
# system:public-info-viewer and system:basic-user (here built in rather than stored objects).
_DISCOVERY_URLS = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
    "/readyz", "/version", "/version/",
]  # fmt: skip
BOOTSTRAP_RULES: tuple[Obj, ...] = (
    {"verbs": ["get"], "nonResourceURLs": _DISCOVERY_URLS},
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
    {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    },
)


_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def well_formed_rules(rules: Any) -> list[Obj]:
    """The rules of a stored role that can be read as PolicyRules; any other grants nothing
    (a string where a list belongs would otherwise match by substring or as a wildcard)."""
    if not isinstance(rules, list):
        return []
    return [
        r
        for r in rules
        if isinstance(r, dict) and all(r.get(k) is None or _is_strings(r[k]) for k in _RULE_LISTS)
    ]


def _well_formed_binding(binding: Any) -> bool:
    if not isinstance(binding, dict) or not isinstance(binding.get("metadata"), dict):
        return False
    ref, subjects = binding.get("roleRef"), binding.get("subjects")
    return (
        isinstance(binding["metadata"].get("name"), str)
        and isinstance(ref, dict)
        and isinstance(ref.get("name"), str)
        and isinstance(subjects, list | None)
        and all(isinstance(s, dict) for s in subjects or [])
    )


def _has(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(rule_resources: Iterable[str], attrs: Attributes) -> bool:
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for resource in rule_resources:
        if resource in ("*", combined):
            return True
        if attrs.subresource and resource == f"*/{attrs.subresource}":
            return True
    return False


def _url_matches(rule_urls: Iterable[str], path: str) -> bool:
    for url in rule_urls:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Obj, attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request."""
    if not _has(rule.get("verbs") or [], attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs") or [], attrs.path)
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups") or [], attrs.api_group)
        and _resource_matches(rule.get("resources") or [], attrs)
        and (not names or attrs.name in names)
    )


def subject_matches(subject: Obj, user: UserInfo, binding_namespace: str) -> bool:
    """Whether a binding's subject is this user (User, Group or ServiceAccount)."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SA_PREFIX}{namespace}:{name}"
    return False


def _role_rules(policy: Policy, ref: Obj, namespace: str) -> list[Obj]:
    if ref.get("kind") == "ClusterRole":
        return policy.cluster_roles.get(ref.get("name", ""), [])
    if ref.get("kind") == "Role":
        return policy.roles.get((namespace, ref.get("name", "")), [])
    return []


@dataclass(frozen=True)
class Grant:
    """Rules reaching a user through one binding (for reasons and rules reviews)."""

    rules: list[Obj]
    reason: str
    namespace: str | None  # None: cluster-wide (a ClusterRoleBinding)


def grants(policy: Policy, user: UserInfo, namespace: str) -> Iterator[Grant]:
    """Every rule set that applies to `user` for requests in `namespace` ("" = cluster)."""
    if AUTHENTICATED in user.groups:
        yield Grant(list(BOOTSTRAP_RULES), "RBAC: allowed by the bootstrap policy", None)
    for binding in policy.cluster_role_bindings:
        if any(subject_matches(s, user, "") for s in binding.get("subjects") or []):
            ref = binding.get("roleRef") or {}
            reason = (
                f'RBAC: allowed by ClusterRoleBinding "{binding["metadata"]["name"]}" '
                f'of ClusterRole "{ref.get("name", "")}"'
            )
            yield Grant(_role_rules(policy, ref, ""), reason, None)
    if not namespace:
        return
    for binding in policy.role_bindings:
        if binding["metadata"].get("namespace") != namespace:
            continue
        if any(subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
            ref = binding.get("roleRef") or {}
            reason = (
                f'RBAC: allowed by RoleBinding "{binding["metadata"]["name"]}/{namespace}" '
                f'of {ref.get("kind", "")} "{ref.get("name", "")}"'
            )
            yield Grant(_role_rules(policy, ref, namespace), reason, namespace)


def authorize(policy: Policy, attrs: Attributes) -> tuple[bool, str]:
    """(allowed, reason): the first rule that allows wins; RBAC never explicitly denies."""
    if MASTERS in attrs.user.groups:
        return True, ""
    namespace = attrs.namespace if attrs.resource_request else ""
    # RoleBinding grants come only for `namespace`, so a non-resource request (namespace "")
    # is only ever allowed through cluster-wide grants, as upstream.
    for grant in grants(policy, attrs.user, namespace):
        if any(rule_allows(rule, attrs) for rule in grant.rules):
            return True, grant.reason
    return False, ""


def policy_from_objects(
    roles: Iterable[Obj],
    cluster_roles: Iterable[Obj],
    role_bindings: Iterable[Obj],
    cluster_role_bindings: Iterable[Obj],
) -> Policy:
    """Index the stored RBAC objects for `authorize` and `grants`."""
    return Policy(
        roles={
            (r["metadata"].get("namespace", ""), r["metadata"]["name"]): well_formed_rules(
                r.get("rules")
            )
            for r in roles
        },
        cluster_roles={
            r["metadata"]["name"]: well_formed_rules(r.get("rules")) for r in cluster_roles
        },
        role_bindings=[b for b in role_bindings if _well_formed_binding(b)],
        cluster_role_bindings=[b for b in cluster_role_bindings if _well_formed_binding(b)],
    )


def forbidden_message(attrs: Attributes) -> str:
    """kube-apiserver's 403 wording (responsewriters.forbiddenMessage + NewForbidden)."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    detail = (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
        f'"{attrs.api_group}" {where}'
    )
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        return f'{qualified} "{attrs.name}" is forbidden: {detail}'
    return f"{qualified} is forbidden: {detail}"
