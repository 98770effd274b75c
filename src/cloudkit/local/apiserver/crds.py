"""CustomResourceDefinition rules: create-time checks, name defaults and status conditions."""

from __future__ import annotations

from typing import Any

from cloudkit.local.apiserver.errors import Cause
from cloudkit.local.apiserver.schemas import check_structural

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def default_names(crd: dict[str, Any]) -> None:
    """`singular` = lowercased kind, `listKind` = kind + List (as the real server defaults)."""
    names = crd.setdefault("spec", {}).setdefault("names", {})
    kind = names.get("kind", "")
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", kind + "List")
    spec = crd["spec"]
    spec.setdefault("scope", "Namespaced")
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            version.setdefault("served", True)


def crd_causes(crd: dict[str, Any]) -> list[Cause]:
    """Checks a CRD must pass before it is stored (422 with these causes otherwise)."""
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    name = crd.get("metadata", {}).get("name", "")
    if not group or "." not in group:
        causes.append(
            Cause("FieldValueInvalid", "should be a domain with at least one dot", "spec.group")
        )
    if not plural:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.names.plural"))
    if not names.get("kind"):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.names.kind"))
    if name != f"{plural}.{group}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                'Unsupported value: supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.versions"))
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    for i, version in enumerate(versions):
        if not isinstance(version, dict):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        path = f"spec.versions[{i}].schema.openAPIV3Schema"
        if schema is None:
            causes.append(Cause("FieldValueRequired", "Required value: schemas are required", path))
            continue
        for cause in check_structural(schema):
            field = f"{path}.{cause.field}" if cause.field else path
            causes.append(Cause(cause.reason, cause.message, field))
    return causes


def accepted_status(crd: dict[str, Any], now: str, names_ok: bool) -> dict[str, Any]:
    """The status the server reports for a stored CRD."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    old_status = crd.get("status") or {}
    stored = list(old_status.get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if version.get("storage") and version["name"] not in stored:
            stored.append(version["name"])
    previous = {c.get("type"): c for c in old_status.get("conditions") or []}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        old = previous.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == status else now
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }

    if names_ok:
        conditions = [
            condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ),
        ]
    else:
        conditions = [
            condition(
                "NamesAccepted",
                "False",
                "NameConflict",
                "the plural or kind is already in use in this group",
            ),
            condition("Established", "False", "NotAccepted", "not all names are accepted"),
        ]
    status: dict[str, Any] = {
        "conditions": conditions,
        "acceptedNames": names if names_ok else {},
        "storedVersions": stored,
    }
    if crd.get("metadata", {}).get("deletionTimestamp"):
        status["conditions"].append(
            condition("Terminating", "True", "InstanceDeletionInProgress", "deleting instances")
        )
    return status


def is_established(crd: dict[str, Any]) -> bool:
    for cond in (crd.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Established":
            return bool(cond.get("status") == "True")
    return False
