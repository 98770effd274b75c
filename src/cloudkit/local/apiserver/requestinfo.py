"""What a request asks for, in authorization terms (kube-apiserver's RequestInfo), from its
method, path and query alone: no registry, so it is decided before routing, as upstream.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudkit.local.apiserver.authz import Attributes, UserInfo

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# `/namespaces/{ns}/status` and `/finalize` are subresources of the namespace itself.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def _true(value: str | None) -> bool:
    return value is not None and value.lower() not in ("false", "0")


def _name_from_field_selector(selector: str | None) -> str:
    """A list or watch narrowed to `metadata.name=X` is authorized as asking for X."""
    if not selector:
        return ""
    terms = selector.split(",")
    if len(terms) != 1:
        return ""
    for op in ("==", "="):
        key, sep, value = terms[0].partition(op)
        if (
            sep
            and key.strip() == "metadata.name"
            and "/" not in value
            and value
            not in (
                "",
                ".",
                "..",
            )
        ):
            return value.strip()
    return ""


def resolve(user: UserInfo, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The authorizer attributes of one request."""
    parts = [p for p in path.split("/") if p]
    non_resource = Attributes(user, method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    rest = rest[1:]  # the version
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if _true(query.get("watch")) else "list"
        name = _name_from_field_selector(query.get("fieldSelector"))
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user,
        verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        namespace=namespace,
        path=path,
    )
