"""Cluster behaviour over the store: create/update/patch/delete with schema handling, CRD
serving, finalizers, garbage collection and namespace termination. No HTTP here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cloudkit.local.apiserver import (
    bodies,
    crds,
    managed_fields,
    rbac_validation,
    schemas,
    semantics,
)
from cloudkit.local.apiserver.deletion import DeletionRules
from cloudkit.local.apiserver.errors import ApiError, Cause, already_exists, conflict, invalid
from cloudkit.local.apiserver.errors import not_found as _not_found
from cloudkit.local.apiserver.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from cloudkit.local.apiserver.resources import (
    CRD_RKEY,
    NAMESPACE_RKEY,
    RBAC,
    Registry,
    ResourceInfo,
)
from cloudkit.local.apiserver.store import Obj, Put, Remove, Store

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SECRET_RKEY = "/secrets"


# An admission step that needs the caller (e.g. RBAC escalation): (resource, old or None,
# new) just before storage; it raises to refuse.
Admission = Callable[[ResourceInfo, Obj | None, Obj], None]


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    warnings: list[str] = field(default_factory=list)
    admit: Admission | None = None
    # Who writes, for metadata.managedFields: the fieldManager, or the User-Agent's product.
    field_manager: str = "unknown"
    force: bool = False  # server-side apply: take fields other managers own


def not_found(info: ResourceInfo, name: str) -> ApiError:
    return _not_found(info.plural, name, info.group)


class Cluster(DeletionRules):
    """The object semantics of a Kubernetes API server over one Store and Registry."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        for rkey, obj in store.all_objects():
            if rkey == CRD_RKEY and crds.is_established(obj):
                registry.serve_crd(obj)
        for name in INITIAL_NAMESPACES:
            if store.get(NAMESPACE_RKEY, "", name) is None:
                self._write([Put(NAMESPACE_RKEY, self._new_namespace(name))])

    def _new_namespace(self, name: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": semantics.new_uid(),
                "creationTimestamp": semantics.now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # -- reads ---------------------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str, name: str) -> Obj:
        obj = self.store.get(info.rkey, namespace if info.namespaced else "", name)
        if obj is None:
            raise not_found(info, name)
        return self.present(info, obj)

    def present(self, info: ResourceInfo, obj: Obj) -> Obj:
        """The object as served by `info`'s version (stored objects are version-neutral)."""
        if obj.get("apiVersion") == info.api_version:
            return obj
        shown = dict(obj)
        shown["apiVersion"] = info.api_version
        return shown

    # -- the one write path ----------------------------------------------------------------

    def _write(self, ops: list[Put | Remove]) -> None:
        for op in ops:
            if op.rkey == CRD_RKEY:
                # Discovery changes before the CRD's watch event goes out (kopf rescans then).
                name = op.obj["metadata"]["name"]
                if isinstance(op, Put) and crds.is_established(op.obj):
                    self.registry.serve_crd(op.obj)
                elif isinstance(op, Remove):
                    self.registry.unserve_crd(name)
        self.store.write(ops)
        for op in ops:
            if isinstance(op, Remove):
                self._after_removal(op.rkey, op.obj)

    # -- create ----------------------------------------------------------------------------

    def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: Obj,
        opts: WriteOptions,
        applied: Obj | None = None,
    ) -> Obj:
        """Create `body`, which this may change (a request's freshly decoded body); `applied`
        is the configuration of a server-side apply that creates, kept as it is."""
        if applied is not None and isinstance(body, dict):
            body = semantics.json_copy(body)
        # prepare_create copies what it keeps, so the request's body needs no copy of its own.
        body = self._check_fields(info, body, opts)
        obj = semantics.prepare_create(info, body, namespace, semantics.now_rfc3339())
        self._check_metadata(info, obj)
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        if info.namespaced:
            self._check_namespace(info, ns, meta["name"])
        if info.custom:
            self._check_crd_active(info)
            obj = self._apply_schema(info, obj, None, opts)
        if info.rkey == CRD_RKEY:
            obj = self._prepare_crd(obj)
        if info.rkey == SECRET_RKEY:
            semantics.secret_defaults(obj)
        self._admit(info, None, obj, opts)
        if info.rkey == NAMESPACE_RKEY:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if self.store.get(info.rkey, ns, meta["name"]) is not None:
            raise already_exists(info.plural, meta["name"], info.group)
        self._record_ownership(info, {}, obj, None, opts, applied)
        if opts.dry_run:
            return self.present(info, obj)
        self._write([Put(info.rkey, obj)])
        return self.present(info, obj)

    @staticmethod
    def _admit(info: ResourceInfo, old: Obj | None, new: Obj, opts: WriteOptions) -> None:
        """The admission step of built-ins beyond their metadata: RBAC objects are validated
        (and defaulted) as upstream, then the caller's own admission (escalation) runs."""
        if info.group != RBAC and opts.admit is None:
            return
        if old is not None and semantics.same_content(old, new):
            return  # a no-op write admits nothing
        if info.group == RBAC:
            rbac_validation.check(info.kind, new, old)
        if opts.admit is not None:
            opts.admit(info, old, new)

    @staticmethod
    def _check_metadata(info: ResourceInfo, obj: Obj) -> None:
        """ObjectMeta rules every write path shares (a /status write keeps the stored
        metadata, so it cannot get around them)."""
        causes = semantics.annotation_causes(obj)
        if causes:
            raise invalid(info.kind, info.group, obj["metadata"].get("name", ""), causes)

    def _check_namespace(self, info: ResourceInfo, ns: str, name: str) -> None:
        namespace = self.store.get(NAMESPACE_RKEY, "", ns)
        if namespace is None:
            raise _not_found("namespaces", ns, "")
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{info.plural} "{name}" is forbidden: unable to create new content in namespace '
                f"{ns} because it is being terminated",
                name=name,
                group=info.group,
                kind=info.plural,
            )

    def _check_crd_active(self, info: ResourceInfo) -> None:
        crd = self.store.get(CRD_RKEY, "", f"{info.plural}.{info.group}")
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            raise ApiError(
                405,
                "create not allowed while custom resource definition is terminating",
                reason="MethodNotAllowed",
            )

    @staticmethod
    def _report_unknown(unknown: list[str], opts: WriteOptions) -> None:
        """fieldValidation: Strict rejects unknown fields (400), Warn returns a Warning."""
        if not unknown:
            return
        if opts.field_validation == "Strict":
            fields = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise ApiError(400, f"strict decoding error: {fields}")
        if opts.field_validation != "Ignore":
            opts.warnings.extend(f'unknown field "{u}"' for u in unknown)

    def _check_fields(self, info: ResourceInfo, obj: Obj, opts: WriteOptions) -> Obj:
        if info.custom or not isinstance(obj, dict):
            return obj
        unknown = semantics.unknown_fields(info, obj)
        self._report_unknown(unknown, opts)
        for field_path in unknown:
            # Unknown fields are dropped, as the real server's decoder does.
            parts = field_path.split(".")
            parent = obj["metadata"] if parts[0] == "metadata" else obj
            parent.pop(parts[-1], None)
        return obj

    def _apply_schema(
        self, info: ResourceInfo, obj: Obj, old: Obj | None, opts: WriteOptions
    ) -> Obj:
        schema = info.schema
        if not schema:
            return obj
        # `obj` is the write's own copy (prepare_create, carry_over): no second and third copy.
        obj, unknown = schemas.prune(obj, schema, in_place=True)
        self._report_unknown(unknown, opts)
        obj = schemas.apply_defaults(obj, schema, in_place=True)
        causes = schemas.validate(obj, schema, old)
        if causes:
            raise invalid(info.kind, info.group, obj["metadata"].get("name", ""), causes)
        return obj

    def _prepare_crd(self, crd: Obj, old: Obj | None = None) -> Obj:
        crds.default_names(crd)
        causes = crds.crd_causes(crd)
        if old is not None:
            for key in ("group", "scope"):
                if crd["spec"].get(key) != old["spec"].get(key):
                    causes.append(Cause("FieldValueInvalid", "field is immutable", f"spec.{key}"))
        if causes:
            raise invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                crd["metadata"].get("name", ""),
                causes,
            )
        spec = crd["spec"]
        names_ok = not self.registry.names_taken(
            spec["group"], spec["names"]["plural"], spec["names"]["kind"], crd["metadata"]["name"]
        )
        crd["status"] = crds.accepted_status(crd, semantics.now_rfc3339(), names_ok)
        return crd

    # -- update and patch ----------------------------------------------------------------------

    def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        body: Obj,
        subresource: str | None,
        opts: WriteOptions,
    ) -> Obj:
        """Replace the object (or its status) with `body`, which this may change."""
        old = self.store.get(info.rkey, namespace if info.namespaced else "", name)
        if old is None:
            raise not_found(info, name)
        semantics.check_type(info, body)
        meta = body.get("metadata") or {}
        _check_name(meta, name, namespace if info.namespaced else "")
        rv = meta.get("resourceVersion")
        if not rv and info.custom:
            raise invalid(
                info.kind,
                info.group,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(info.plural, name, info.group)
        # `body` is the request's own (this may change it); carry_over copies what it keeps.
        body = self._check_fields(info, body, opts)
        new = semantics.carry_over(info, old, body, subresource)
        return self._store_update(info, old, new, opts, subresource)

    def patch(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None,
        opts: WriteOptions,
        field_manager: str | None,
    ) -> tuple[Obj, bool]:
        """Apply a patch; returns (object, created) - only server-side apply creates."""
        ns = namespace if info.namespaced else ""
        old = self.store.get(info.rkey, ns, name)
        body = _decode_patch(content_type, raw)
        if content_type == "application/apply-patch+yaml":
            if not field_manager:
                raise invalid(
                    info.kind,
                    info.group,
                    name,
                    [
                        Cause(
                            "FieldValueRequired",
                            "Required value: is required for apply patch",
                            "fieldManager",
                        )
                    ],
                )
            if not isinstance(body, dict):
                raise ApiError(400, "the apply patch must be an object")
            if old is None and subresource is None:
                body.setdefault("metadata", {}).setdefault("name", name)
                _check_name(body["metadata"], name, ns)
                return self.create(info, namespace, body, opts, applied=body), True
        if old is None:
            raise not_found(info, name)
        # JSON patch copies the document itself before its operations change it.
        base = old if content_type == "application/json-patch+json" else semantics.json_copy(old)
        try:
            if content_type == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise ApiError(400, "a merge patch must be a JSON object")
                patched = merge_patch(base, body)
            elif content_type == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ApiError(
                        400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                    )
                patched = json_patch(base, body)
            elif content_type == "application/strategic-merge-patch+json":
                if info.custom:
                    raise ApiError(
                        415,
                        "strategic merge patch is not supported for custom resources; "
                        "use merge patch or JSON patch",
                    )
                if not isinstance(body, dict):
                    raise ApiError(400, "a strategic merge patch must be a JSON object")
                patched = strategic_merge_patch(base, body)
            else:  # server-side apply, approximated as a merge without managedFields
                patched = merge_patch(base, body)
        except PatchError as exc:
            raise invalid(
                info.kind, info.group, name, [Cause("FieldValueInvalid", str(exc), "")]
            ) from None
        if not isinstance(patched, dict):
            raise ApiError(422, "the patched object is not a JSON object", reason="Invalid")
        if isinstance(patched.get("metadata"), dict):
            _check_name(patched["metadata"], name, ns)
        patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if patched_rv and patched_rv != old["metadata"]["resourceVersion"]:
            raise conflict(info.plural, name, info.group)
        patched = self._check_fields(info, patched, opts)
        new = semantics.carry_over(info, old, patched, subresource)
        applied = body if content_type == "application/apply-patch+yaml" else None
        return self._store_update(info, old, new, opts, subresource, applied), False

    @staticmethod
    def _record_ownership(
        info: ResourceInfo,
        old: Obj,
        new: Obj,
        subresource: str | None,
        opts: WriteOptions,
        applied: Obj | None,
    ) -> None:
        """Set new's metadata.managedFields for this write (server-side apply's bookkeeping);
        an apply may also drop fields from `new` and raise 409 on a conflict."""
        split = info.status_subresource
        managed = managed_fields.entries(old) if old else []
        now = semantics.now_rfc3339()
        if applied is not None:
            try:
                managed = managed_fields.apply(
                    managed, old, new, applied, opts.field_manager, info.api_version,
                    subresource, split, opts.force, now,
                )  # fmt: skip
            except managed_fields.ApplyConflicts as exc:
                raise apply_conflict(info, new["metadata"].get("name", ""), exc) from None
        else:
            added, removed = managed_fields.changes(old, new, subresource, split)
            if not added and not removed:  # nothing owned changed: ownership stays as stored
                if old.get("metadata", {}).get("managedFields") is not None:
                    new["metadata"]["managedFields"] = old["metadata"]["managedFields"]
                return
            managed = managed_fields.update(
                managed, added, removed, opts.field_manager, info.api_version, subresource, now
            )
        if old and managed_fields.same_ownership(managed_fields.entries(old), managed):
            new["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        elif managed:
            new["metadata"]["managedFields"] = managed_fields.render(managed)
        else:
            new["metadata"].pop("managedFields", None)

    def _store_update(
        self,
        info: ResourceInfo,
        old: Obj,
        new: Obj,
        opts: WriteOptions,
        subresource: str | None = None,
        applied: Obj | None = None,
    ) -> Obj:
        if applied is not None:  # first: an apply drops the fields its manager stopped applying
            self._record_ownership(info, old, new, subresource, opts, applied)
        if info.custom:
            new = self._apply_schema(info, new, old, opts)
        if info.rkey == SECRET_RKEY:
            semantics.secret_defaults(new)
        self._check_metadata(info, new)
        self._admit(info, old, new, opts)
        causes = semantics.finalizer_causes(old, new)
        if causes:
            raise invalid(info.kind, info.group, old["metadata"]["name"], causes)
        if info.rkey == CRD_RKEY:
            new = self._prepare_crd(new, old)
        semantics.bump_generation(info, old, new)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if applied is None:
            self._record_ownership(info, old, new, subresource, opts, None)
        if semantics.same_content(old, new):
            return self.present(info, old)  # a no-op: no new RV, no event
        if opts.dry_run:
            return self.present(info, new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if info.rkey == NAMESPACE_RKEY and not self._namespace_empty(meta["name"]):
                self._write([Put(info.rkey, new)])
                return self.present(info, new)
            # The last finalizer is gone: the object goes (watchers see only DELETED).
            self._write([Remove(info.rkey, new)])
            return self.present(info, new)
        self._write([Put(info.rkey, new)])
        if meta.get("deletionTimestamp"):
            self._settle(info.rkey, new)
        return self.present(
            info, self.store.get(info.rkey, meta.get("namespace") or "", meta["name"]) or new
        )

    # -- delete --------------------------------------------------------------------------------

    def delete(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        options: dict[str, Any],
        opts: WriteOptions,
    ) -> tuple[Obj, bool]:
        """Delete; returns (object, removed). Not removed = finalizers pending."""
        ns = namespace if info.namespaced else ""
        obj = self.store.get(info.rkey, ns, name)
        if obj is None:
            raise not_found(info, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise conflict(info.plural, name, info.group)
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"].get(
            "resourceVersion"
        ):
            raise conflict(info.plural, name, info.group)
        policy = options.get("propagationPolicy") or "Background"
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if opts.dry_run:
            return self.present(info, obj), not obj["metadata"].get("finalizers")
        return self._delete_object(info.rkey, obj, policy)


def apply_conflict(info: ResourceInfo, name: str, exc: managed_fields.ApplyConflicts) -> ApiError:
    """kube-apiserver's 409 for an unforced apply over fields other managers own."""
    causes = [
        Cause("FieldManagerConflict", f"conflict with {c.manager}",
              managed_fields.path_text(c.path))
        for c in exc.conflicts
    ]  # fmt: skip
    return ApiError(
        409, str(exc), reason="Conflict", name=name, group=info.group, kind=info.plural,
        causes=causes,
    )  # fmt: skip


def _check_name(meta: Any, name: str, namespace: str) -> None:
    """A body naming another object than the URL is a 400, as upstream's checkName."""
    if not isinstance(meta, dict):
        return
    body_name = meta.get("name")
    if body_name and body_name != name:
        raise ApiError(
            400, f"the name of the object ({body_name}) does not match the name on the URL ({name})"
        )
    body_ns = meta.get("namespace")
    if namespace and body_ns and body_ns != namespace:
        raise ApiError(
            400,
            f"the namespace of the object ({body_ns}) does not match the namespace on the URL "
            f"({namespace})",
        )


def _decode_patch(content_type: str, raw: bytes) -> Any:
    if content_type == "application/apply-patch+yaml":
        return bodies.decode_yaml(raw)
    return bodies.decode_json(raw, "the patch")
