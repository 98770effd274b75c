"""Pure list-query parsing: filters, lookups, ordering, pages, protected fields."""

from __future__ import annotations

import pytest

from cloudkit.local.automation.listing import (
    MAX_PAGE_SIZE,
    ListQueryError,
    page_links,
    page_out_of_range,
    parse_list_query,
)

FIELDS = {"id": "id", "status": "status", "created": "created", "job_template": "template_id"}
COLUMNS = frozenset({"id", "status", "created", "template_id"})


def test_filters_become_bound_parameters() -> None:
    query = parse_list_query(
        {"id__in": "1,2", "status": "x'; DROP TABLE jobs; --", "job_template": "4"},
        fields=FIELDS,
    )
    where, params = query.sql_where(COLUMNS)
    assert where == "id IN (?, ?) AND status = ? AND template_id = ?"
    assert params == [1, 2, "x'; DROP TABLE jobs; --", 4]


def test_times_are_normalised_to_the_store_format() -> None:
    query = parse_list_query({"created__gte": "2026-01-02T03:04:05+01:00"}, fields=FIELDS)
    assert query.sql_where(COLUMNS) == ("created >= ?", ["2026-01-02T02:04:05.000000Z"])


def test_order_and_pages() -> None:
    query = parse_list_query({"order_by": "-id,status", "page": "2", "page_size": "500"},
                             fields=FIELDS)  # fmt: skip
    assert query.sql_order(COLUMNS) == "id DESC, status ASC"
    assert query.page == 2 and query.page_size == MAX_PAGE_SIZE
    assert not page_out_of_range(query, 201)
    assert page_out_of_range(query, 200)
    links = page_links("/api/v2/jobs/", {"page": "2", "status": "x"}, query, 450)
    assert links == {
        "next": "/api/v2/jobs/?status=x&page=3",
        "previous": "/api/v2/jobs/?status=x&page=1",
    }


def test_protected_and_invalid() -> None:
    with pytest.raises(ListQueryError) as caught:
        parse_list_query({"extra_vars__contains": "x"}, fields=FIELDS)
    assert (caught.value.status, caught.value.detail) == (
        403,
        "Filtering on extra_vars is not allowed.",
    )
    with pytest.raises(ListQueryError) as caught:
        parse_list_query({"order_by": "secret"}, fields=FIELDS)
    assert caught.value.status == 400
    with pytest.raises(ListQueryError) as caught:
        parse_list_query({"page": "0"}, fields=FIELDS)
    assert caught.value.status == 404
    with pytest.raises(ListQueryError):
        parse_list_query({"id": "abc"}, fields=FIELDS)
