"""Deletion rules: finalizers the server owns, garbage collection by ownerReferences
(background, foreground, orphan; synchronous), namespace termination and CRD cleanup."""

from __future__ import annotations

from cloudkit.local.apiserver import crds, semantics
from cloudkit.local.apiserver.resources import CRD_RKEY, NAMESPACE_RKEY, Registry
from cloudkit.local.apiserver.store import Obj, Put, Remove, Store

FOREGROUND = "foregroundDeletion"
CLEANUP_FINALIZER = crds.CLEANUP_FINALIZER


class DeletionRules:
    """Mixed into Cluster: every removal goes through here so dependents, terminating
    namespaces and CRDs are driven forward in the same request (synchronous GC)."""

    store: Store
    registry: Registry

    def _write(self, ops: list[Put | Remove]) -> None:
        raise NotImplementedError

    def _delete_object(self, rkey: str, obj: Obj, policy: str) -> tuple[Obj, bool]:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj, False  # repeating a pending delete changes nothing
        info = self.registry.by_rkey(rkey)
        uid = meta.get("uid", "")
        if policy == "Orphan":
            self._orphan_dependents(uid)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self.store.dependents(uid) and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if rkey == CRD_RKEY and CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)
        terminating_ns = rkey == NAMESPACE_RKEY
        if not finalizers and not terminating_ns:
            self._write([Remove(rkey, semantics.json_copy(obj))])
            return obj, True
        new = semantics.json_copy(obj)
        new_meta = new["metadata"]
        new_meta["deletionTimestamp"] = semantics.now_rfc3339()
        new_meta["deletionGracePeriodSeconds"] = 0
        if finalizers:
            new_meta["finalizers"] = finalizers
        if info is not None and info.has_generation:
            new_meta["generation"] = int(new_meta.get("generation", 1)) + 1
        if terminating_ns:
            new.setdefault("status", {})["phase"] = "Terminating"
        if rkey == CRD_RKEY:
            new["status"] = crds.accepted_status(new, semantics.now_rfc3339(), True)
        self._write([Put(rkey, new)])
        self._settle(rkey, new)
        current = self.store.get(rkey, new_meta.get("namespace") or "", new_meta["name"])
        return (current or new), current is None

    def _orphan_dependents(self, uid: str) -> None:
        for rkey, dep in self.store.dependents(uid):
            new = semantics.json_copy(dep)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._write([Put(rkey, new)])

    def _settle(self, rkey: str, obj: Obj) -> None:
        """Drive an object in deletion forward: delete what it waits for, drop finalizers
        the server owns once their condition holds, remove it when none are left."""
        meta = obj["metadata"]
        uid = meta.get("uid", "")
        finalizers = list(meta.get("finalizers") or [])
        if FOREGROUND in finalizers:
            for dep_rkey, dep in self.store.dependents(uid):
                self._delete_object(dep_rkey, dep, "Foreground")
        if rkey == CRD_RKEY and CLEANUP_FINALIZER in finalizers:
            for info in self.registry.crd_infos(meta["name"])[:1]:
                for cr in self.store.list_objects(info.rkey):
                    self._delete_object(info.rkey, cr, "Background")
        if rkey == NAMESPACE_RKEY:
            for ns_rkey in self._namespaced_rkeys():
                for item in self.store.list_objects(ns_rkey, meta["name"]):
                    self._delete_object(ns_rkey, item, "Background")
        self._release(rkey, meta.get("namespace") or "", meta["name"])

    def _namespaced_rkeys(self) -> list[str]:
        return sorted({info.rkey for info in self.registry.all() if info.namespaced})

    def _namespace_empty(self, ns: str) -> bool:
        return all(not self.store.list_objects(rkey, ns) for rkey in self._namespaced_rkeys())

    def _release(self, rkey: str, ns: str, name: str) -> None:
        """Remove server-owned finalizers whose condition holds; remove the object if done."""
        obj = self.store.get(rkey, ns, name)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FOREGROUND in finalizers and not self.store.dependents(meta.get("uid", "")):
            finalizers.remove(FOREGROUND)
        if CLEANUP_FINALIZER in finalizers and rkey == CRD_RKEY:
            infos = self.registry.crd_infos(name)
            if not infos or not self.store.list_objects(infos[0].rkey):
                finalizers.remove(CLEANUP_FINALIZER)
        if rkey == NAMESPACE_RKEY and not self._namespace_empty(name):
            return
        if finalizers == list(meta.get("finalizers") or []) and finalizers:
            return
        new = semantics.json_copy(obj)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
            self._write([Put(rkey, new)])
        else:
            new["metadata"].pop("finalizers", None)
            self._write([Remove(rkey, new)])

    def _after_removal(self, rkey: str, obj: Obj) -> None:
        meta = obj["metadata"]
        uid = meta.get("uid", "")
        for dep_rkey, dep in self.store.dependents(uid):
            if dep["metadata"].get("deletionTimestamp"):
                continue
            self._delete_object(dep_rkey, dep, "Background")
        for ref in meta.get("ownerReferences") or []:
            found = self.store.by_uid(ref.get("uid", ""))
            if found is not None:
                owner_rkey, owner = found
                om = owner["metadata"]
                self._release(owner_rkey, om.get("namespace") or "", om["name"])
        ns = meta.get("namespace")
        if ns:
            self._release(NAMESPACE_RKEY, "", ns)
        if rkey not in (CRD_RKEY, NAMESPACE_RKEY):
            info = self.registry.by_rkey(rkey)
            if info is not None and info.custom:
                self._release(CRD_RKEY, "", f"{info.plural}.{info.group}")
