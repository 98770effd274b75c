"""The watch cache: ordering by resourceVersion, deletions, the VM label index, own writes,
fresh VM lists, and that nothing a caller holds can change what is cached."""

from __future__ import annotations

from typing import Any

from cloudkit.api import names
from cloudkit.operator.cache import WatchCache, newer_or_same
from cloudkit.operator.kube_objects import InstanceKey, VmListing

KEY = InstanceKey("ns", "ci")


def instance(rv: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "ci", "namespace": "ns", "resourceVersion": rv},
        "spec": {"templateID": "tpl"},
        **fields,
    }


def vm(name: str, rv: str, label: str | None = "ci", ready: bool = True) -> dict[str, Any]:
    labels = {names.VM_INSTANCE_LABEL: label} if label else {}
    return {
        "metadata": {"name": name, "namespace": "tenant", "resourceVersion": rv, "labels": labels},
        "spec": {"template": {"spec": {"domain": {"cpu": {"cores": 2}}}}},
        "status": {
            "printableStatus": "Running" if ready else "Starting",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def vmi(name: str, rv: str, address: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "tenant",
            "resourceVersion": rv,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {"interfaces": [{"ipAddress": address}], "phase": "Running"},
    }


def test_the_larger_decimal_version_wins_else_the_last_arrival() -> None:
    assert newer_or_same("9", "10")  # numbers, not strings ("10" < "9" as text)
    assert not newer_or_same("10", "9")
    assert newer_or_same("10", "10")
    assert newer_or_same("b", "a")  # opaque versions: the last to arrive wins
    assert newer_or_same(None, "1")

    cache = WatchCache()
    cache.instance_event("MODIFIED", instance("10", status={"phase": "Ready"}))
    cache.instance_event("MODIFIED", instance("9", status={"phase": "Progressing"}))
    assert (cache.instance(KEY) or {})["status"]["phase"] == "Ready"


def test_a_deletion_removes_and_an_older_version_cannot_bring_it_back() -> None:
    cache = WatchCache()
    cache.instance_event(None, instance("5"))
    cache.instance_event("DELETED", instance("7"))
    assert cache.instance(KEY) is None
    assert cache.instance_deleted(KEY)
    cache.store_instance(instance("6"))  # an own write racing the DELETED event
    assert cache.instance(KEY) is None
    cache.instance_event("ADDED", instance("8"))  # re-created under the same name
    assert (cache.instance(KEY) or {})["metadata"]["resourceVersion"] == "8"
    assert not cache.instance_deleted(KEY)


def test_own_writes_are_kept_over_the_older_events_that_arrive_after_them() -> None:
    cache = WatchCache()
    cache.instance_event(None, instance("3"))
    cache.store_instance(instance("5", status={"phase": "Progressing"}))
    cache.instance_event("MODIFIED", instance("4"))  # the watch is behind our write
    assert (cache.instance(KEY) or {})["metadata"]["resourceVersion"] == "5"


def test_nothing_a_caller_holds_can_change_the_cached_instance() -> None:
    cache = WatchCache()
    written = instance("5", status={"conditions": [{"type": "Ready"}]})
    cache.store_instance(written)
    written["status"]["conditions"].append({"type": "Changed"})  # the writer goes on using it
    read = cache.instance(KEY) or {}
    read["status"]["conditions"].clear()
    read["metadata"]["finalizers"] = ["x"]
    again = cache.instance(KEY) or {}
    assert again["status"]["conditions"] == [{"type": "Ready"}]
    assert "finalizers" not in again["metadata"]


def test_managed_fields_are_not_kept() -> None:
    cache = WatchCache()
    body = instance("5")
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    cache.instance_event("ADDED", body)
    assert "managedFields" not in (cache.instance(KEY) or {})["metadata"]
    assert "managedFields" in body["metadata"]  # kopf's own object is left as it was


def test_vms_are_found_by_their_instance_label_with_their_vmi() -> None:
    cache = WatchCache()
    cache.vm_event(None, vm("a", "10"))
    cache.vmi_event(None, vmi("a", "11", "10.0.0.7"))
    cache.vm_event(None, vm("other", "12", label="someone-else"))
    [seen] = cache.vm_observations("ci")
    assert (seen.namespace, seen.name, seen.ready, seen.ip_address) == (
        "tenant",
        "a",
        True,
        "10.0.0.7",
    )
    assert seen.vmi_created_at is not None
    cache.vm_event("MODIFIED", vm("a", "13", label="someone-else"))  # relabelled
    assert cache.vm_observations("ci") == ()
    assert [v.name for v in cache.vm_observations("someone-else")] == ["a", "other"]
    cache.vm_event("DELETED", vm("a", "14", label="someone-else"))
    assert [v.name for v in cache.vm_observations("someone-else")] == ["other"]
    cache.vmi_event("DELETED", vmi("a", "15", "10.0.0.7"))
    assert cache.sizes() == {"instances": 0, "vms": 1, "vmis": 0}


def test_vms_and_vmis_are_kept_slim() -> None:
    cache = WatchCache()
    cache.vm_event(None, vm("a", "10"))
    cache.vmi_event(None, vmi("a", "11", "10.0.0.7"))
    stored_vm = cache._vms.objects[("tenant", "a")]
    stored_vmi = cache._vmis.objects[("tenant", "a")]
    assert set(stored_vm) == {"metadata", "status"}  # no spec: the VM template is not read
    assert stored_vmi["status"] == {"interfaces": [{"ipAddress": "10.0.0.7"}]}


def test_a_fresh_list_replaces_what_the_cache_holds_for_the_label() -> None:
    cache = WatchCache()
    assert not cache.vms_listed("ci")
    cache.vm_event(None, vm("stale", "10"))  # deleted while the watch was away
    cache.vm_event(None, vm("late", "30"))  # created after the list below was taken
    cache.vmi_event(None, vmi("kept", "11", "10.0.0.1"))
    listing = VmListing(vms=[vm("kept", "12", ready=False)], vmis={}, resource_version="20")
    cache.store_vms("ci", listing)
    assert cache.vms_listed("ci")
    seen = {v.name: v for v in cache.vm_observations("ci")}
    assert sorted(seen) == ["kept", "late"]
    assert not seen["kept"].ready
    assert seen["kept"].ip_address is None  # its VMI was not there when listed
    cache.vm_event("MODIFIED", vm("stale", "9"))  # an older event cannot bring it back
    assert sorted(v.name for v in cache.vm_observations("ci")) == ["kept", "late"]


def test_forgetting_an_instance_lists_its_vms_fresh_again() -> None:
    cache = WatchCache()
    cache.store_vms("ci", VmListing(vms=[], vmis={}, resource_version="1"))
    cache.store_instance(instance("2"))
    cache.forget_instance(KEY)
    assert cache.instance(KEY) is None
    assert not cache.vms_listed("ci")


def test_a_forgotten_instance_is_not_brought_back_by_a_late_store_of_a_version_it_had() -> None:
    """forget_instance knows no deletion version (a GET found nothing, or the last finalizer
    went): the newest version known stands for it, so nothing up to it comes back."""
    cache = WatchCache()
    cache.instance_event(None, instance("5"))
    cache.store_instance(instance("6"))  # an own write
    cache.forget_instance(KEY)
    assert cache.instance(KEY) is None
    cache.store_instance(instance("6"))  # a concurrent pass's write, stored late
    cache.instance_event("MODIFIED", instance("5"))  # the watch, behind
    assert cache.instance(KEY) is None
    assert cache.instance_deleted(KEY)
    cache.instance_event("ADDED", instance("9"))  # re-created under the same name
    assert (cache.instance(KEY) or {})["metadata"]["resourceVersion"] == "9"


def test_forgetting_after_the_watch_s_deletion_keeps_the_deletion_s_version() -> None:
    cache = WatchCache()
    cache.instance_event(None, instance("5"))
    cache.instance_event("DELETED", instance("7"))
    cache.forget_instance(KEY)  # a pass then found it gone too
    cache.store_instance(instance("6"))
    assert cache.instance(KEY) is None


def test_the_deleted_version_itself_does_not_come_back() -> None:
    cache = WatchCache()
    cache.instance_event("DELETED", instance("7"))
    cache.instance_event("MODIFIED", instance("7"))
    assert cache.instance(KEY) is None


def test_once_the_watches_listed_every_vm_and_vmi_none_cached_means_none() -> None:
    cache = WatchCache()
    cache.watch_synced(names.VM_PLURAL)
    assert not cache.vms_listed("ci"), "the VMIs' watch has not listed yet"
    cache.watch_synced(names.VMI_PLURAL)
    assert cache.vms_listed("ci") and cache.vms_listed("another")
    assert cache.vm_observations("ci") == ()
