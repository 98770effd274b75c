"""Patch formats: RFC 7386 merge, RFC 6902 JSON patch, strategic merge minimum."""

from __future__ import annotations

import pytest

from cloudkit.local.apiserver.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert merge_patch({"a": "foo"}, "bar") == "bar"


def test_json_patch_all_ops_and_escaping() -> None:
    doc = {"m": {"a/b": 1, "t~x": 2}, "l": [1, 2]}
    out = json_patch(
        doc,
        [
            {"op": "test", "path": "/m/a~1b", "value": 1},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "add", "path": "/l/0", "value": 0},
            {"op": "replace", "path": "/m/t~0x", "value": 5},
            {"op": "copy", "from": "/l/0", "path": "/c"},
            {"op": "move", "from": "/c", "path": "/d"},
            {"op": "remove", "path": "/m/a~1b"},
        ],
    )
    assert out == {"m": {"t~x": 5}, "l": [0, 1, 2, 3], "d": 0}
    assert doc["l"] == [1, 2]  # input untouched


@pytest.mark.parametrize(
    "op",
    [
        {"op": "test", "path": "/a", "value": 2},
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "add", "path": "/l/5", "value": 1},
        {"op": "bogus", "path": "/a"},
    ],
)
def test_json_patch_failures(op: dict[str, object]) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": 1, "l": []}, [op])


def test_strategic_merge_lists_and_directives() -> None:
    target = {
        "metadata": {
            "finalizers": ["a"],
            "ownerReferences": [{"uid": "1", "name": "x"}],
            "labels": {"k": "v", "z": "z"},
        },
        "data": {"keep": "1"},
    }
    patch = {
        "metadata": {
            "finalizers": ["b", "a"],
            "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2", "name": "n"}],
            "$setElementOrder/finalizers": ["a", "b"],
            "labels": {"z": None},
        },
        "data": {"$patch": "replace", "new": "2"},
    }
    out = strategic_merge_patch(target, patch)
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert out["metadata"]["ownerReferences"] == [
        {"uid": "1", "name": "y"},
        {"uid": "2", "name": "n"},
    ]
    assert out["metadata"]["labels"] == {"k": "v"}
    assert out["data"] == {"new": "2"}
    out = strategic_merge_patch(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]
    out = strategic_merge_patch(
        out, {"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}}
    )
    assert [r["uid"] for r in out["metadata"]["ownerReferences"]] == ["2"]
    assert strategic_merge_patch(
        {"s": {"a": 1, "b": 2}}, {"s": {"$retainKeys": ["a"], "a": 3}}
    ) == {"s": {"a": 3}}
