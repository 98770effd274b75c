"""List filters and order, pure: CEL over the object as `this`, errors named, costs bounded."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.fulfillment.filters import FilterError, parse_filter, parse_order
from cloudkit.fulfillment.models import ComputeInstance
from cloudkit.fulfillment.store.base import OrderKey

WEB: dict[str, Any] = {
    "id": "1",
    "metadata": {"name": "web-1", "labels": {"tier": "front"}},
    "spec": {},
}
DB: dict[str, Any] = {"id": "2", "metadata": {"name": "db-1"}, "spec": {}}


def selected(text: str, *objs: dict[str, Any]) -> list[str]:
    flt = parse_filter(text)
    assert flt is not None
    return [str(o["id"]) for o in objs if flt.matches(o)]


def test_a_filter_selects_by_the_object_as_this() -> None:
    assert selected('this.metadata.name.startsWith("web")', WEB, DB) == ["1"]


def test_a_record_without_the_field_is_not_selected_rather_than_failing_the_list() -> None:
    assert selected('this.metadata.labels.tier == "front"', WEB, DB) == ["1"]


def test_sql_metacharacters_in_a_filter_are_only_a_string() -> None:
    odd = {"id": "3", "metadata": {"name": "x'; DROP TABLE compute_instances; --"}}
    assert selected('this.metadata.name == "x\'; DROP TABLE compute_instances; --"', odd) == ["3"]


def test_a_filter_that_does_not_parse_is_refused_naming_the_problem() -> None:
    with pytest.raises(FilterError, match=r"filter: compilation failed: syntax error at column"):
        parse_filter("this.metadata.name ==")


TEN = "[1,2,3,4,5,6,7,8,9,10]"


def test_a_filter_over_the_cost_limit_of_one_run_is_refused_naming_the_limit() -> None:
    flt = parse_filter(f"{TEN}.all(a, {TEN}.all(b, {TEN}.all(c, {TEN}.all(d, a*b*c*d > 0))))")
    assert flt is not None
    with pytest.raises(FilterError, match="cost limit exceeded"):
        flt.matches(WEB)


def test_a_cheap_filter_within_the_cost_limit_runs() -> None:
    assert selected(f"{TEN}.all(a, {TEN}.all(b, a*b > 0))", WEB) == ["1"]


def test_a_request_whose_filter_runs_outlast_its_time_limit_is_refused() -> None:
    flt = parse_filter("true", time_limit_s=0)
    assert flt is not None
    with pytest.raises(FilterError, match="took longer than 0 s"):
        flt.matches(WEB)
    endless = parse_filter("true", time_limit_s=None)
    assert endless is not None and endless.matches(WEB)


def test_a_blank_filter_is_no_filter() -> None:
    assert parse_filter(None) is None and parse_filter(" ") is None


def test_order_terms_are_paths_with_an_optional_direction() -> None:
    assert parse_order("metadata.name desc, id", ComputeInstance) == [
        OrderKey("metadata.name", True),
        OrderKey("id", False),
    ]
    assert parse_order(None, ComputeInstance) == []


@pytest.mark.parametrize(
    "text", ["name; drop", "metadata.name sideways", "a..b", "(id)", "spec.colour", "name"]
)
def test_an_order_term_that_is_not_a_field_path_is_refused(text: str) -> None:
    with pytest.raises(FilterError, match="order"):
        parse_order(text, ComputeInstance)
