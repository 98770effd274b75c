"""The operator's watch cache: the instances, VMs and VMIs its watches delivered last.

An informer's store, fed by the kopf event handlers before they enqueue a key (shell.py), by
the reconciler's own writes (the object each write returned) and by its fresh reads. The
reconciler reads from here where a fresh GET is not needed for correctness; which reads stay
fresh, and why, is in reconcile.py and docs/decisions.md ("Reads from the watch").

Ordering: of two versions of one object, the one with the larger resourceVersion is kept when
both parse as decimal integers (etcd's revisions and our API server's do); otherwise the last
to arrive wins. Kubernetes calls resourceVersions opaque, so this is a guess about the server;
a wrong guess is still safe, because every write carries the resourceVersion it was computed
from as a precondition: a stale read costs a Conflict and a fresh re-read, never a wrong write.
A deletion leaves a tombstone (its resourceVersion, a bounded number of them), so a late store
of a version no newer than the deletion (an own write racing the DELETED event) does not bring
the object back. A deletion learnt without a version (a GET that found nothing, the last
finalizer removed) is remembered at the newest version known of the object.

Memory: VMs and VMIs are kept slim (the metadata and status fields the reconciler reads), and
managedFields are dropped from instances, so 1,000 instances with their VMs stay a few MB.
Nothing handed out can be mutated into the cache: instances are copied on read and on an own
store; VMs and VMIs leave only as VirtualMachineObservations (frozen).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudkit.api import names
from cloudkit.lifecycle.types import VirtualMachineObservation
from cloudkit.operator.kube import Kube
from cloudkit.operator.kube_objects import (
    InstanceKey,
    ObjectKey,
    VmListing,
    object_key,
    vm_observation,
)

DELETED = "DELETED"
MAX_TOMBSTONES = 4096
"""Deletions remembered per kind; a store older than a forgotten one is a harmless stale read."""

_VM_KINDS = frozenset({names.VM_PLURAL, names.VMI_PLURAL})
_VM_METADATA = ("name", "namespace", "labels", "resourceVersion", "deletionTimestamp")
_VMI_METADATA = (*_VM_METADATA, "creationTimestamp")

Obj = dict[str, Any]


def newer_or_same(old: str | None, new: str | None) -> bool:
    """Does version `new` replace `old`? By number when both are decimal, else it arrived last."""
    if old is not None and new is not None and old.isdecimal() and new.isdecimal():
        return int(new) >= int(old)
    return True


def newer(old: str | None, new: str | None) -> bool:
    """Is version `new` strictly after `old`? By number when both are decimal, else it arrived
    last (and differs): what may replace a tombstone, which the deleted version itself may not."""
    if old is not None and new is not None and old.isdecimal() and new.isdecimal():
        return int(new) > int(old)
    return old is None or new != old


def resource_version(obj: Obj) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return version if isinstance(version, str) else None


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars), several times faster than deepcopy."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def slim_instance(obj: Obj) -> Obj:
    """The instance without managedFields (large on real servers, never read); shares the rest."""
    metadata = obj.get("metadata") or {}
    if "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


def slim_vm(obj: Obj) -> Obj:
    """What vm_observation reads of a VM: its identity, label, version and status."""
    return {"metadata": _pick(obj.get("metadata"), _VM_METADATA), "status": obj.get("status")}


def slim_vmi(obj: Obj) -> Obj:
    """What vm_observation reads of a VMI: its identity, creation, deletion and interfaces."""
    status = obj.get("status") or {}
    return {
        "metadata": _pick(obj.get("metadata"), _VMI_METADATA),
        "status": {"interfaces": status.get("interfaces")},
    }


def _pick(metadata: Any, keys: Iterable[str]) -> Obj:
    source = metadata if isinstance(metadata, dict) else {}
    return {k: source[k] for k in keys if k in source}


@dataclass
class _Store:
    """One kind's objects by (namespace, name), with the ordering rule and tombstones."""

    slim: Callable[[Obj], Obj]
    objects: dict[ObjectKey, Obj] = field(default_factory=dict)
    tombstones: OrderedDict[ObjectKey, str | None] = field(default_factory=OrderedDict)

    def put(self, obj: Obj) -> Obj | None:
        """Store `obj` unless a newer version is cached or a deletion at least as new is known;
        the object now stored under its key, or None when `obj` was no newer than a deletion."""
        key = object_key(obj)
        version = resource_version(obj)
        if key in self.tombstones:
            if not newer(self.tombstones[key], version):
                return None
            del self.tombstones[key]
        current = self.objects.get(key)
        if current is not None and not newer_or_same(resource_version(current), version):
            return current
        stored = self.slim(obj)
        self.objects[key] = stored
        return stored

    def delete(self, key: ObjectKey, version: str | None) -> Obj | None:
        """Forget `key`, remembering the deletion's version (None: unknown, then the newest
        version known of it stands for the deletion); the object it held, if any."""
        current = self.objects.get(key)
        if version is None:
            version = None if current is None else resource_version(current)
        elif current is not None and not newer_or_same(resource_version(current), version):
            return None  # a newer version than this deletion exists (a re-created object)
        version = _latest(self.tombstones.pop(key, None), version)
        self.tombstones[key] = version
        while len(self.tombstones) > MAX_TOMBSTONES:
            self.tombstones.popitem(last=False)
        return self.objects.pop(key, None)


def _latest(*versions: str | None) -> str | None:
    """The newest of some versions of one object (None when none is known)."""
    latest: str | None = None
    for version in versions:
        if version is not None and (latest is None or newer_or_same(latest, version)):
            latest = version
    return latest


@dataclass
class WatchCache:
    """Instances by key; VMs by (namespace, name) and by their instance label; VMIs by key."""

    _instances: _Store = field(default_factory=lambda: _Store(slim_instance))
    _vms: _Store = field(default_factory=lambda: _Store(slim_vm))
    _vmis: _Store = field(default_factory=lambda: _Store(slim_vmi))
    _vms_by_instance: dict[str, set[ObjectKey]] = field(default_factory=dict)
    _instance_of_vm: dict[ObjectKey, str] = field(default_factory=dict)
    _listed: set[str] = field(default_factory=set)
    """Instance names whose VMs were listed fresh into the cache by this process."""
    _synced: set[str] = field(default_factory=set)
    """The kinds (plurals) whose watch has delivered a whole list: from then on the cache holds
    every object of the kind, so "none cached" means none for every instance."""

    # --- fed by the watches ------------------------------------------------------------------

    def instance_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        obj = dict(body)
        if event_type == DELETED:
            self._instances.delete(object_key(obj), resource_version(obj))
        else:
            self._instances.put(obj)

    def vm_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        obj = dict(body)
        key = object_key(obj)
        if event_type == DELETED:
            if self._vms.delete(key, resource_version(obj)) is not None:
                self._unindex(key)
            return
        stored = self._vms.put(obj)
        if stored is not None:
            self._index(key, _instance_label(stored))

    def vmi_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        obj = dict(body)
        if event_type == DELETED:
            self._vmis.delete(object_key(obj), resource_version(obj))
        else:
            self._vmis.put(obj)

    def watch_synced(self, plural: str) -> None:
        """The watch of `plural` delivered a whole list (and follows every change after it)."""
        self._synced.add(plural)

    # --- fed by the reconciler ---------------------------------------------------------------

    def store_instance(self, obj: Obj) -> None:
        """An instance the reconciler read fresh or wrote (copied: it goes on using its own)."""
        self._instances.put(json_copy(slim_instance(obj)))

    def forget_instance(self, key: InstanceKey) -> None:
        """The instance is gone (no version of the deletion is known): drop it, refuse any later
        store of a version it had, and list its VMs fresh if the name comes back."""
        self._instances.delete((key.namespace, key.name), None)
        self._listed.discard(key.name)

    def store_vms(self, instance_name: str, listing: VmListing) -> None:
        """A fresh list of the VMs labelled `instance_name`, with their VMIs: stored, and the
        cached VMs of that label the list does not hold dropped unless newer than the list."""
        listed = {object_key(vm) for vm in listing.vms}
        for key in list(self._vms_by_instance.get(instance_name, ())):
            current = self._vms.objects.get(key)
            gone = key not in listed and current is not None
            if gone and newer_or_same(resource_version(current or {}), listing.resource_version):
                self.vm_event(DELETED, {"metadata": _key_metadata(key, listing)})
        for vm in listing.vms:
            self.vm_event(None, vm)
            vmi = listing.vmis.get(object_key(vm))
            if vmi is not None:
                self._vmis.put(vmi)
            elif object_key(vm) in self._vmis.objects:
                self._vmis.delete(object_key(vm), listing.resource_version)
        self._listed.add(instance_name)

    # --- read by the reconciler --------------------------------------------------------------

    def instance(self, key: InstanceKey) -> Obj | None:
        """A copy of the cached instance (the caller may change it), or None on a miss."""
        found = self._instances.objects.get((key.namespace, key.name))
        return None if found is None else json_copy(found)

    def instance_deleted(self, key: InstanceKey) -> bool:
        """Did the watch deliver this instance's deletion (and nothing newer since)?"""
        return (key.namespace, key.name) in self._instances.tombstones

    def vms_listed(self, instance_name: str) -> bool:
        """Were this name's VMs listed fresh by this process, or every VM and VMI by the
        watches (so "none cached" means none)?"""
        return instance_name in self._listed or self._synced >= _VM_KINDS

    def vm_observations(self, instance_name: str) -> tuple[VirtualMachineObservation, ...]:
        keys = sorted(self._vms_by_instance.get(instance_name, ()))
        return tuple(
            vm_observation(self._vms.objects[key], self._vmis.objects.get(key)) for key in keys
        )

    def sizes(self) -> dict[str, int]:
        return {
            "instances": len(self._instances.objects),
            "vms": len(self._vms.objects),
            "vmis": len(self._vmis.objects),
        }

    def _index(self, key: ObjectKey, instance_name: str | None) -> None:
        self._unindex(key)
        if instance_name:
            self._vms_by_instance.setdefault(instance_name, set()).add(key)
            self._instance_of_vm[key] = instance_name

    def _unindex(self, key: ObjectKey) -> None:
        name = self._instance_of_vm.pop(key, None)
        if name is None:
            return
        keys = self._vms_by_instance.get(name, set())
        keys.discard(key)
        if not keys:
            self._vms_by_instance.pop(name, None)


def _instance_label(obj: Obj) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(names.VM_INSTANCE_LABEL)
    return value if isinstance(value, str) and value else None


def _key_metadata(key: ObjectKey, listing: VmListing) -> Obj:
    return {"namespace": key[0], "name": key[1], "resourceVersion": listing.resource_version}


@dataclass
class Reads:
    """The reconciler's reads: from the watch cache unless told fresh, fresh on a cache miss,
    and every fresh answer stored. Without a cache (no watch feeds one) every read is fresh."""

    kube: Kube
    cache: WatchCache | None = None

    @property
    def caching(self) -> bool:
        return self.cache is not None

    async def instance(self, key: InstanceKey, *, fresh: bool) -> Obj | None:
        """The instance (a copy the caller owns), or None when it is gone."""
        if self.cache is None:
            return await self.kube.get_instance(key)
        if not fresh:
            cached = self.cache.instance(key)
            if cached is not None:
                return cached
            if self.cache.instance_deleted(key):
                return None  # the watch saw it go; a re-creation would be a new event
        found = await self.kube.get_instance(key)
        if found is None:
            self.cache.forget_instance(key)
        else:
            self.cache.store_instance(found)
        return found

    async def vms(
        self, instance_name: str, *, fresh: bool
    ) -> tuple[VirtualMachineObservation, ...] | None:
        """The instance's VMs; None if KubeVirt is not there. From the cache only once this
        process listed them fresh: before that, "none cached" could mean "not seen yet"."""
        if self.cache is not None and not fresh and self.cache.vms_listed(instance_name):
            return self.cache.vm_observations(instance_name)
        listing = await self.kube.list_vm_objects(instance_name)
        if listing is None:
            return None
        if self.cache is not None:
            self.cache.store_vms(instance_name, listing)
        return listing.observations()

    def wrote(self, obj: Obj) -> None:
        """The object a write of the reconciler returned: newer than anything read before."""
        if self.cache is not None:
            self.cache.store_instance(obj)

    def gone(self, key: InstanceKey) -> None:
        if self.cache is not None:
            self.cache.forget_instance(key)
