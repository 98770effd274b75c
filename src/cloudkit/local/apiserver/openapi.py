"""OpenAPI: v3 (an index and minimal per-group-version documents) and an empty v2 document.

kubectl's default strict validation only checks that a PATCH operation tagged with the kind's
x-kubernetes-group-version-kind accepts a `fieldValidation` parameter; then it lets the server
validate. CRD schemas are included so `kubectl explain` has something to show.

A `kind: List` (what `kubectl get -o yaml` writes) has no v3 operation, so kubectl validates
it on the client against OpenAPI v2, which client-go reads as protobuf only. The v2 document
here defines no models: kubectl then checks nothing of the items itself (it skips kinds the
document does not define) and each item is validated by the server under
`fieldValidation=Strict`, as any other write.
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


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V2_TITLE, _V2_VERSION = "Kubernetes", "v1.33.0"


def v2_document() -> dict[str, Any]:
    """The OpenAPI v2 document as JSON: no paths, no definitions."""
    return {"swagger": "2.0", "info": {"title": _V2_TITLE, "version": _V2_VERSION},
            "paths": {}, "definitions": {}}  # fmt: skip


def _length_delimited(number: int, payload: bytes) -> bytes:
    # Field numbers and lengths here stay below 128, so each is a one-byte varint.
    assert number < 16 and len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def v2_protobuf() -> bytes:
    """The same document as gnostic's openapi_v2.Document (swagger = 1, info = 2 {title = 1,
    version = 2}, paths = 8): three fields, encoded by hand rather than with a protobuf
    runtime and generated code for a message of which nothing else is used."""
    info = _length_delimited(1, _V2_TITLE.encode()) + _length_delimited(2, _V2_VERSION.encode())
    return _length_delimited(1, b"2.0") + _length_delimited(2, info) + _length_delimited(8, b"")


def index(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.group_versions().items() for v in vs]
    for group, version in gvs:
        doc = group_version_doc(registry, group, version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
