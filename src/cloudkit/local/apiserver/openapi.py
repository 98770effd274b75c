"""OpenAPI v3: an index and minimal per-group-version documents.

kubectl's default strict validation only checks that a PATCH operation tagged with the kind's
x-kubernetes-group-version-kind accepts a `fieldValidation` parameter; then it lets the server
validate. CRD schemas are included so `kubectl explain` has something to show.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cloudkit.local.apiserver.resources import Registry, ResourceInfo

_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(info: ResourceInfo) -> str:
    reverse = ".".join(reversed(info.group.split("."))) if info.group else "io.k8s.api.core"
    return f"{reverse}.{info.version}.{info.kind}"


def group_version_doc(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = registry.resources(group, version)
    if infos is None:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for info in infos:
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        name = _schema_name(info)
        ref = {"$ref": f"#/components/schemas/{name}"}
        body = {"content": {"application/json": {"schema": ref}}}
        prefix = "/" + _gv_path(group, version)
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        item_path = f"{prefix}{scope}/{info.plural}/{{name}}"
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": _PARAMS,
            "responses": {"200": body},
        }
        paths[item_path] = {
            "get": {**op, "x-kubernetes-action": "get", "parameters": []},
            "put": {**op, "x-kubernetes-action": "put", "requestBody": body},
            "patch": {
                **op,
                "x-kubernetes-action": "patch",
                "requestBody": {
                    "content": {
                        t: {"schema": {"type": "object"}}
                        for t in (
                            "application/json-patch+json",
                            "application/merge-patch+json",
                            "application/apply-patch+yaml",
                        )
                    }
                },
            },
        }
        paths[f"{prefix}{scope}/{info.plural}"] = {
            "post": {**op, "x-kubernetes-action": "post", "requestBody": body},
        }
        schema: dict[str, Any] = dict(info.schema) if info.schema else {"type": "object"}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[name] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.group_versions().items() for v in vs]
    for group, version in gvs:
        doc = group_version_doc(registry, group, version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
