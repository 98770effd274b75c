"""Object rules on dicts: create metadata, carried fields, generation, finalizers, no-ops."""

from __future__ import annotations

import pytest

from cloudkit.local.apiserver.errors import ApiError
from cloudkit.local.apiserver.resources import ResourceInfo
from cloudkit.local.apiserver.semantics import (
    bump_generation,
    carry_over,
    finalizer_causes,
    json_copy,
    prepare_create,
    same_content,
)

CR = ResourceInfo(
    "x.io",
    "v1",
    "things",
    "thing",
    "Thing",
    True,
    status_subresource=True,
    has_generation=True,
    custom=True,
)


def test_create_sets_system_fields_and_drops_status() -> None:
    obj = prepare_create(
        CR, {"metadata": {"generateName": "t-", "uid": "mine"}, "status": {"a": 1}}, "ns", "T"
    )
    meta = obj["metadata"]
    assert meta["name"].startswith("t-") and len(meta["name"]) == 7
    assert meta["uid"] != "mine" and meta["generation"] == 1 and meta["namespace"] == "ns"
    assert obj["apiVersion"] == "x.io/v1" and obj["kind"] == "Thing" and "status" not in obj
    with pytest.raises(ApiError) as info:
        prepare_create(CR, {"metadata": {}}, "ns", "T")
    assert info.value.code == 422 and info.value.causes[0].field == "metadata.name"


def test_update_rules() -> None:
    old = prepare_create(CR, {"metadata": {"name": "a"}, "spec": {"x": 1}}, "ns", "T")
    old["status"] = {"s": 1}
    new = carry_over(
        CR,
        old,
        {"metadata": {"name": "a", "generation": 9}, "spec": {"x": 2}, "status": {"s": 2}},
        None,
    )
    assert new["status"] == {"s": 1} and new["metadata"]["uid"] == old["metadata"]["uid"]
    bump_generation(CR, old, new)
    assert new["metadata"]["generation"] == 2
    status_only = carry_over(CR, old, {"spec": {"x": 5}, "status": {"s": 3}}, "status")
    assert status_only["spec"] == {"x": 1} and status_only["status"] == {"s": 3}
    assert same_content(old, {**old, "metadata": {**old["metadata"], "resourceVersion": "7"}})


def test_no_new_finalizers_while_deleting() -> None:
    old = {"metadata": {"deletionTimestamp": "T", "finalizers": ["a"]}}
    assert finalizer_causes(old, {"metadata": {"finalizers": []}}) == []
    causes = finalizer_causes(old, {"metadata": {"finalizers": ["a", "b"]}})
    assert causes[0].reason == "FieldValueForbidden" and causes[0].field == "metadata.finalizers"


def test_json_copy_is_deep_and_independent() -> None:
    tags = {"a"}
    original = {"spec": {"items": [{"n": 1}, [2, {"m": None}]], "tags": tags}, "s": "x"}
    copied = json_copy(original)
    assert copied == original
    copied["spec"]["items"][0]["n"] = 9
    copied["spec"]["items"][1][1]["m"] = 1
    copied["spec"]["tags"].add("b")
    assert original == {"spec": {"items": [{"n": 1}, [2, {"m": None}]], "tags": {"a"}}, "s": "x"}
