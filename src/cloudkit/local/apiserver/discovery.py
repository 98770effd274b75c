"""Discovery documents: /version, /api, /apis, /api/v1 and /apis/{group}/{version}."""

from __future__ import annotations

import platform
from typing import Any

from cloudkit.local.apiserver.resources import VERBS, Registry, ResourceInfo

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-cloudkit",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": f"{platform.system().lower()}/amd64",
}


# The review APIs answered by `access.py`: create only, nothing stored, listed in discovery as
# kube-apiserver lists them (clients such as `kubectl auth whoami` look for them there).
REVIEWS: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("authentication.k8s.io", "v1"): [
        ("selfsubjectreviews", "SelfSubjectReview", False),
        ("tokenreviews", "TokenReview", False),
    ],
    ("authorization.k8s.io", "v1"): [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
    ],
}


def _group_versions(registry: Registry) -> dict[str, list[str]]:
    out = registry.group_versions()
    for group, version in REVIEWS:
        versions = out.setdefault(group, [])
        if version not in versions:
            versions.append(version)
    return out


def _review_entry(plural: str, kind: str, namespaced: bool) -> dict[str, Any]:
    return {
        "name": plural,
        "singularName": plural.removesuffix("s"),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["create"],
    }


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "name": name,
        "versions": entries,
        # The DynamicClient compares the preferred version to an entry as a whole dict.
        "preferredVersion": dict(entries[0]),
    }


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in _group_versions(registry).items()],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = _group_versions(registry).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def _entry(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(VERBS),
        "storageVersionHash": "",
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = registry.resources(group, version)
    reviews = REVIEWS.get((group, version), [])
    if infos is None and not reviews:
        return None
    resources = [_review_entry(*review) for review in reviews]
    for info in sorted(infos or [], key=lambda i: i.plural):
        resources.append(_entry(info))
        if info.status_subresource:
            resources.append(
                {
                    "name": f"{info.plural}/status",
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if group == "" and info.plural == "serviceaccounts":
            resources.append(
                {
                    "name": "serviceaccounts/token",
                    "singularName": "",
                    "namespaced": True,
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
