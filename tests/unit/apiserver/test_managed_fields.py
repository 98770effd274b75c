"""Field ownership on plain data: FieldsV1 trees, Update and Apply bookkeeping, conflicts."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.local.apiserver import managed_fields as mf

NOW = "2026-01-01T00:00:00Z"


def _obj(spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "w", "uid": "u", "resourceVersion": "7"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "g/v1", "kind": "W", "metadata": meta, "spec": spec,
            "status": {"phase": "x"}}  # fmt: skip


def test_fields_v1_round_trip_and_system_metadata_is_unowned() -> None:
    paths = mf.field_set(_obj({"size": 2, "tags": ["a"], "empty": {}}, {"app": "x"}))
    assert mf.to_fields_v1(paths) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:empty": {}, "f:size": {}, "f:tags": {}},
        "f:status": {"f:phase": {}},
    }
    assert mf.from_fields_v1(mf.to_fields_v1(paths)) == paths
    # A field owned itself and through a child is marked ".", as upstream.
    both = {("f:spec",), ("f:spec", "f:size")}
    assert mf.to_fields_v1(both) == {"f:spec": {".": {}, "f:size": {}}}
    assert mf.from_fields_v1(mf.to_fields_v1(both)) == both
    assert mf.from_fields_v1("garbage") == set()


def test_status_belongs_to_the_status_subresource_when_split() -> None:
    obj = _obj({"size": 2})
    assert ("f:status", "f:phase") not in mf.field_set(obj, None, status_split=True)
    assert mf.field_set(obj, "status", status_split=True) == {("f:status", "f:phase")}


def test_update_takes_changed_fields_from_other_managers() -> None:
    old, new = _obj({"size": 2, "zone": "a"}), _obj({"size": 3, "zone": "a"})
    created = mf.update([], *mf.changes({}, old, None, True), "maker", "g/v1", None, NOW)
    added, removed = mf.changes(old, new, None, True)
    assert (added, removed) == ({("f:spec", "f:size")}, set())
    after = mf.update(created, added, removed, "editor", "g/v1", None, NOW)
    owned = {e.manager: e.fields for e in after}
    assert owned == {"maker": {("f:spec", "f:zone")}, "editor": {("f:spec", "f:size")}}


def test_apply_conflicts_unless_forced_and_prunes_what_it_stopped_applying() -> None:
    base = _obj({"size": 2, "zone": "a"}, {"keep": "y"})
    config_a = {"spec": {"size": 2, "zone": "a"}, "metadata": {"labels": {"keep": "y"}}}
    owned = mf.apply([], {}, base, config_a, "a", "g/v1", None, True, False, NOW)
    changed = _obj({"size": 3, "zone": "a"}, {"keep": "y"})
    with pytest.raises(mf.ApplyConflicts) as raised:
        mf.apply(owned, base, changed, {"spec": {"size": 3}}, "b", "g/v1", None, True, False, NOW)
    assert str(raised.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.size'
    forced = mf.apply(owned, base, changed, {"spec": {"size": 3}}, "b", "g/v1", None, True,
                      True, NOW)  # fmt: skip
    assert {e.manager: e.fields for e in forced}["a"] == {
        ("f:spec", "f:zone"), ("f:metadata", "f:labels", "f:keep")}  # fmt: skip
    # a drops its label: nobody else owns it, so it leaves the object.
    merged = _obj({"size": 3, "zone": "a"}, {"keep": "y"})
    mf.apply(forced, changed, merged, {"spec": {"zone": "a"}}, "a", "g/v1", None, True, False, NOW)
    assert merged["metadata"]["labels"] == {}


def test_conflict_message_with_several_managers_names_each() -> None:
    conflicts = [mf.Conflict('"b"', ("f:spec", "f:x")), mf.Conflict('"a"', ("f:spec", "f:y")),
                 mf.Conflict('"a"', ("f:spec", "f:z"))]  # fmt: skip
    assert mf.message(conflicts) == (
        'Apply failed with 3 conflicts: conflicts with "a":\n- .spec.y\n- .spec.z\n'
        'conflicts with "b":\n- .spec.x'
    )


def test_apply_keeps_a_field_it_now_applies_through_its_children() -> None:
    before = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    owned = mf.apply([], {}, before, before, "me", "v1", None, False, False, NOW)
    merged = {**before, "data": {"a": "b"}}
    config = {**before, "data": {"a": "b"}}
    after = mf.apply(owned, before, merged, config, "me", "v1", None, False, False, NOW)
    assert merged["data"] == {"a": "b"}
    assert [e.fields for e in after] == [{("f:data", "f:a")}]
