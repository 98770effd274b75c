"""Object rules on plain dicts: system metadata on create, carried fields and generation on
update, names, and finalizer/deletion constraints. Pure: the clock and ids are passed in."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from cloudkit.local.apiserver.errors import ApiError, Cause, invalid
from cloudkit.local.apiserver.resources import ResourceInfo

Obj = dict[str, Any]

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Set by the server only; a client's values are ignored on create.
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
    "managedFields",
)
# Carried over from the stored object on update.
_CARRIED_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def json_copy(value: Any) -> Any:
    """A deep copy of a decoded JSON/YAML value. Objects here are trees of dicts, lists and
    immutable scalars, so this needs none of copy.deepcopy's memo and type dispatch, which
    cost a write more than its SQLite commit."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    if isinstance(value, dict | list | set):  # subclasses (and YAML's !!set): the slow way
        return copy.deepcopy(value)
    return value


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generated_name(prefix: str) -> str:
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    return prefix[:58] + suffix


def name_causes(info: ResourceInfo, name: str) -> list[Cause]:
    if info.plural == "namespaces":
        if len(name) > 63 or not _LABEL.match(name):
            return [
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                    "case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character",
                    "metadata.name",
                )
            ]
        return []
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
                "metadata.name",
            )
        ]
    return []


def check_type(info: ResourceInfo, obj: Obj) -> None:
    """A body whose apiVersion/kind do not match the URL is a 400."""
    if not isinstance(obj, dict):
        raise ApiError(400, "the request body must be a JSON object")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind is not None and kind != info.kind:
        raise ApiError(
            400,
            f"the kind in the body ({kind}) does not match the resource ({info.kind})",
        )
    if api_version is not None and api_version != info.api_version:
        raise ApiError(
            400,
            f"the API version in the body ({api_version}) does not match the URL "
            f"({info.api_version})",
        )
    if not isinstance(obj.get("metadata", {}), dict):
        raise ApiError(400, "metadata must be an object")


def prepare_create(info: ResourceInfo, body: Obj, namespace: str | None, now: str) -> Obj:
    """The object as stored on create (before schema handling and the store's RV)."""
    check_type(info, body)
    obj: Obj = json_copy(body)
    obj["apiVersion"] = info.api_version
    obj["kind"] = info.kind
    meta = obj.setdefault("metadata", {})
    if meta.get("resourceVersion"):
        raise ApiError(
            400, "resourceVersion should not be set on objects to be created", reason="BadRequest"
        )
    for key in _SYSTEM_META:
        meta.pop(key, None)
    if info.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and namespace and body_ns != namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        meta["namespace"] = namespace or body_ns
    else:
        meta.pop("namespace", None)
    if not meta.get("name"):
        if meta.get("generateName"):
            meta["name"] = generated_name(meta["generateName"])
        else:
            raise invalid(
                info.kind,
                info.group,
                "",
                [
                    Cause(
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                        "metadata.name",
                    )
                ],
            )
    causes = name_causes(info, meta["name"])
    if causes:
        raise invalid(info.kind, info.group, meta["name"], causes)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now
    if info.has_generation:
        meta["generation"] = 1
    if info.status_subresource and info.custom:
        obj.pop("status", None)
    return obj


def secret_defaults(obj: Obj) -> None:
    """Secrets: `type` defaults to Opaque and `stringData` is folded into base64 `data`."""
    if not obj.get("type"):
        obj["type"] = "Opaque"
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def carry_over(info: ResourceInfo, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """Merge an update into the stored object according to the subresource rules."""
    check_type(info, new)
    if subresource == "status":
        # /status changes only status (and nothing in metadata but what we carry).
        result: Obj = json_copy(old)
        if "status" in new:
            result["status"] = json_copy(new["status"])
        else:
            result.pop("status", None)
        return result
    result = json_copy(new)
    result["apiVersion"] = info.api_version
    result["kind"] = info.kind
    meta = result.setdefault("metadata", {})
    old_meta = old["metadata"]
    for key in ("name", "namespace"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    for key in _CARRIED_META:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("managedFields", None)
    if info.status_subresource:
        # Main-resource writes keep the stored status.
        if "status" in old:
            result["status"] = json_copy(old["status"])
        else:
            result.pop("status", None)
    return result


def bump_generation(info: ResourceInfo, old: Obj, new: Obj) -> None:
    """Bump metadata.generation when anything outside metadata changed."""
    if not info.has_generation:
        return
    # With a status subresource, status lives apart from the spec and never bumps it.
    ignored = ("metadata", "status") if info.status_subresource else ("metadata",)
    strip_old = {k: v for k, v in old.items() if k not in ignored}
    strip_new = {k: v for k, v in new.items() if k not in ignored}
    if strip_old != strip_new:
        new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1


def finalizer_causes(old: Obj, new: Obj) -> list[Cause]:
    """While an object is being deleted, finalizers may only be removed."""
    if not old["metadata"].get("deletionTimestamp"):
        return []
    before = set(old["metadata"].get("finalizers") or [])
    after = set(new["metadata"].get("finalizers") or [])
    added = sorted(after - before)
    if not added:
        return []
    return [
        Cause(
            "FieldValueForbidden",
            "Forbidden: no new finalizers can be added if the object is being deleted, found "
            f"new finalizers {added!r}",
            "metadata.finalizers",
        )
    ]


# kube-apiserver's TotalAnnotationSizeLimitB: the sum of every key's and value's length.
MAX_ANNOTATION_BYTES = 256 * 1024


def annotation_causes(obj: Obj) -> list[Cause]:
    """More than 256 KiB of annotations (keys and values, in bytes) is a 422, as upstream."""
    annotations = obj.get("metadata", {}).get("annotations")
    if not isinstance(annotations, dict):
        return []
    total = 0
    for key, value in annotations.items():
        text = value if isinstance(value, str) else json.dumps(value)
        total += len(str(key).encode()) + len(text.encode())
    if total <= MAX_ANNOTATION_BYTES:
        return []
    return [
        Cause(
            "FieldValueTooLong",
            f"Too long: must have at most {MAX_ANNOTATION_BYTES} bytes",
            "metadata.annotations",
        )
    ]


def same_content(old: Obj, new: Obj) -> bool:
    """Whether an update changes nothing (resourceVersion aside): a no-op write."""
    old_meta = {k: v for k, v in old.get("metadata", {}).items() if k != "resourceVersion"}
    new_meta = {k: v for k, v in new.get("metadata", {}).items() if k != "resourceVersion"}
    if old_meta != new_meta:
        return False
    return {k: v for k, v in old.items() if k != "metadata"} == {
        k: v for k, v in new.items() if k != "metadata"
    }


def normalize_time(value: str) -> str:
    """Accept `+00:00` offsets and fractions on input; store whole-second `Z` timestamps."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_COMMON = frozenset({"apiVersion", "kind", "metadata"})
# Top-level fields of the built-ins whose bodies we check under fieldValidation.
_BUILTIN_FIELDS: dict[str, frozenset[str]] = {
    "/configmaps": _COMMON | {"data", "binaryData", "immutable"},
    "/secrets": _COMMON | {"data", "stringData", "type", "immutable"},
    "/namespaces": _COMMON | {"spec", "status"},
    "coordination.k8s.io/leases": _COMMON | {"spec"},
    "/serviceaccounts": _COMMON | {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "/services": _COMMON | {"spec", "status"},
    "apps/deployments": _COMMON | {"spec", "status"},
    "policy/poddisruptionbudgets": _COMMON | {"spec", "status"},
    "rbac.authorization.k8s.io/roles": _COMMON | {"rules"},
    "rbac.authorization.k8s.io/clusterroles": _COMMON | {"rules", "aggregationRule"},
    "rbac.authorization.k8s.io/rolebindings": _COMMON | {"subjects", "roleRef"},
    "rbac.authorization.k8s.io/clusterrolebindings": _COMMON | {"subjects", "roleRef"},
}


def unknown_fields(info: ResourceInfo, obj: Obj) -> list[str]:
    """Unknown top-level and metadata fields of a built-in (CRs: the schema engine prunes)."""
    known = _BUILTIN_FIELDS.get(info.rkey)
    found: list[str] = []
    if known is not None:
        found += sorted(k for k in obj if k not in known)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        found += sorted(f"metadata.{k}" for k in meta if k not in _OBJECT_META_FIELDS)
    return found
