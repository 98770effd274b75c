"""The resource registry: built-in kinds plus the kinds served from established CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CRD_RKEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_RKEY = "/namespaces"
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class ResourceInfo:
    """Everything the HTTP layer and the object rules need to know about one resource."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # CRs and CRDs carry metadata.generation; ConfigMaps, Secrets, ... do not.
    has_generation: bool = False
    custom: bool = False
    printer_columns: tuple[dict[str, Any], ...] = ()
    selectable_fields: tuple[str, ...] = ()
    schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    extra_field_labels: tuple[str, ...] = ()

    @property
    def rkey(self) -> str:
        """Storage key: version-independent, so every served version sees the same objects."""
        return f"{self.group}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTINS: tuple[ResourceInfo, ...] = (
    ResourceInfo(
        "", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), (), True,
        extra_field_labels=("status.phase",),
    ),
    ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",), ("all",)),
    ResourceInfo(
        "", "v1", "secrets", "secret", "Secret", True, (), (), extra_field_labels=("type",)
    ),
    ResourceInfo(
        "", "v1", "events", "event", "Event", True, ("ev",), (),
        extra_field_labels=_EVENT_FIELDS,
    ),
    ResourceInfo("events.k8s.io", "v1", "events", "event", "Event", True, ("ev",)),
    ResourceInfo("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
    # Stored and served only, no controllers behind them: what deploy/ applies.
    ResourceInfo("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",)),
    ResourceInfo("", "v1", "services", "service", "Service", True, ("svc",), ("all",), True),
    ResourceInfo(
        "apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",),
        True, True,
    ),
    ResourceInfo(
        "policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget",
        True, ("pdb",), (), True, True,
    ),
    ResourceInfo(RBAC, "v1", "roles", "role", "Role", True),
    ResourceInfo(RBAC, "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    ResourceInfo(RBAC, "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    ResourceInfo(
        RBAC, "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False
    ),
    ResourceInfo(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
        "CustomResourceDefinition", False, ("crd", "crds"), ("api-extensions",), True, True,
    ),
)  # fmt: skip


def infos_from_crd(crd: dict[str, Any]) -> list[ResourceInfo]:
    """One ResourceInfo per served version of an accepted CRD."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = spec.get("group", "")
    kind = names.get("kind", "")
    infos = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        infos.append(
            ResourceInfo(
                group=group,
                version=version["name"],
                plural=names.get("plural", ""),
                singular=names.get("singular") or kind.lower(),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                has_generation=True,
                custom=True,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                selectable_fields=tuple(
                    f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or ()
                ),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return infos


class Registry:
    """Served resources by group/version and plural; CRD kinds come and go at run time."""

    def __init__(self) -> None:
        self._by_gv: dict[tuple[str, str], dict[str, ResourceInfo]] = {}
        self._crd_infos: dict[str, list[ResourceInfo]] = {}
        self._group_order: list[str] = []
        for info in BUILTINS:
            self._add(info)

    def _add(self, info: ResourceInfo) -> None:
        self._by_gv.setdefault((info.group, info.version), {})[info.plural] = info
        if info.group and info.group not in self._group_order:
            self._group_order.append(info.group)

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gv.get((group, version), {}).get(plural)

    def resources(self, group: str, version: str) -> list[ResourceInfo] | None:
        found = self._by_gv.get((group, version))
        return None if found is None else list(found.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Groups (core excluded) in registration order with their served versions."""
        out: dict[str, list[str]] = {}
        for group in self._group_order:
            versions = [v for (g, v) in self._by_gv if g == group and self._by_gv[(g, v)]]
            if versions:
                out[group] = versions
        return out

    def all(self) -> list[ResourceInfo]:
        return [info for infos in self._by_gv.values() for info in infos.values()]

    def by_rkey(self, rkey: str) -> ResourceInfo | None:
        for info in self.all():
            if info.rkey == rkey:
                return info
        return None

    def crd_infos(self, crd_name: str) -> list[ResourceInfo]:
        return list(self._crd_infos.get(crd_name, []))

    def serve_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        self.unserve_crd(name)
        infos = infos_from_crd(crd)
        self._crd_infos[name] = infos
        for info in infos:
            self._add(info)

    def unserve_crd(self, crd_name: str) -> None:
        for info in self._crd_infos.pop(crd_name, []):
            bucket = self._by_gv.get((info.group, info.version), {})
            bucket.pop(info.plural, None)
            if not bucket:
                self._by_gv.pop((info.group, info.version), None)

    def names_taken(self, group: str, plural: str, kind: str, crd_name: str) -> bool:
        """Whether another served resource already uses this plural or kind in the group."""
        for info in self.all():
            if info.group != group:
                continue
            if f"{info.plural}.{info.group}" == crd_name:
                continue
            if info.plural == plural or info.kind == kind:
                return True
        return False
