"""Label/field selectors and the printer-column JSONPath subset."""

from __future__ import annotations

import pytest

from cloudkit.local.apiserver.errors import ApiError
from cloudkit.local.apiserver.selectors import (
    name_from_field_selector,
    parse_field_selector,
    parse_label_selector,
)
from cloudkit.local.apiserver.table import human_duration, jsonpath


def _obj(**labels: str) -> dict[str, object]:
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "type": "Opaque"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2),b", {"a": "2", "b": ""}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("!a", {"b": "1"}, True),
        ("a>3", {"a": "4"}, True),
        ("a<3", {"a": "x"}, False),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    match = parse_label_selector(selector)
    assert match is not None and match(_obj(**labels)) is expected


@pytest.mark.parametrize("bad", ["a in (1", "a=b=c", "=x", "a>x"])
def test_label_selector_syntax_errors(bad: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(bad)
    assert info.value.code == 400


def test_field_selector() -> None:
    supported = {"metadata.name", "metadata.namespace", "type"}.__contains__
    match = parse_field_selector("metadata.name=n,type!=Other", supported)
    assert match is not None and match(_obj())
    with pytest.raises(ApiError):
        parse_field_selector("spec.x=1", supported)
    assert name_from_field_selector("metadata.name==w1") == "w1"
    assert name_from_field_selector("metadata.name=w1,type=x") is None


def test_jsonpath_subset() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]
        }
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, "{.status.conditions[0].type}") == ["A"]
    assert jsonpath(obj, ".status.conditions[*].type") == ["A", "Ready"]
    assert jsonpath(obj, ".spec.missing") == []


def test_human_duration() -> None:
    assert [human_duration(s) for s in (5, 200, 4000, 90000, 400000)] == [
        "5s",
        "3m20s",
        "66m",
        "25h",
        "4d15h",
    ]
