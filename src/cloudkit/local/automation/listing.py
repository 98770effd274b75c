"""Pure parsing of AWX list queries (filters, ordering, pages) into a safe SQL fragment.

Only the lookups the reference names are supported: exact, __in, __gt/__gte/__lt/__lte,
__isnull, __startswith, __icontains, __iexact; with AWX's prefixes `not__` (negate),
`or__` (all such filters form one OR group) and `chain__` (here the same as a plain filter:
every field has one value per row), and `search=` (each term must occur in a search field).
Field names are mapped through an allow-list, so nothing from the query string reaches SQL
except as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
# AWX refuses to filter on these (they may hold secrets); the reference documents a 403.
PROTECTED_FIELDS = frozenset({"extra_vars", "job_args", "job_env", "job_cwd", "survey_passwords"})
# Parameters that are not filters.
CONTROL_PARAMS = frozenset(
    {"page", "page_size", "order_by", "format", "no_truncate", "count_disabled", "search"}
)
TIME_FIELDS = frozenset({"created", "started", "finished"})

_SQL_OPERATORS = {"exact": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class ListQueryError(Exception):
    """A query the API refuses; `status` is 400 or 403 and `detail` the message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Filter:
    column: str
    lookup: str
    value: Any
    negate: bool = False
    group: str | None = None
    """Filters sharing a group are ORed together; groups and ungrouped filters are ANDed."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    filters: tuple[Filter, ...] = ()
    order: tuple[tuple[str, bool], ...] = (("id", False),)
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    extra: dict[str, str] = field(default_factory=dict)

    def sql_where(self, columns: frozenset[str]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        groups: dict[str, tuple[list[str], list[Any]]] = {}
        for item in self.filters:
            if item.column not in columns:
                raise ListQueryError(400, f"Invalid field name: {item.column}")
            clause, values = _clause(item)
            if item.negate:
                # A NULL column does not match, so its negation does (as Django's ~Q).
                clause = f"NOT COALESCE(({clause}), 0)"
            if item.group is None:
                clauses.append(clause)
                params.extend(values)
            else:
                group_clauses, group_params = groups.setdefault(item.group, ([], []))
                group_clauses.append(clause)
                group_params.extend(values)
        for group_clauses, group_params in groups.values():
            clauses.append("(" + " OR ".join(group_clauses) + ")")
            params.extend(group_params)
        return (" AND ".join(clauses) or "1 = 1"), params

    def sql_order(self, columns: frozenset[str]) -> str:
        parts = []
        for column, descending in self.order:
            if column not in columns:
                raise ListQueryError(400, f"Invalid field name: {column}")
            parts.append(f"{column} {'DESC' if descending else 'ASC'}")
        return ", ".join(parts)


def parse_list_query(
    params: Mapping[str, str],
    *,
    fields: Mapping[str, str],
    default_order: str = "id",
    search_fields: tuple[str, ...] = (),
) -> ListQuery:
    """Turn query parameters into a ListQuery; `fields` maps API field names to columns.

    `search_fields` are the fields `search=` looks in; without any, `search=` is ignored.
    """
    filters: list[Filter] = _search(params.get("search", ""), search_fields, fields)
    extra: dict[str, str] = {}
    for key, raw in params.items():
        if key in CONTROL_PARAMS:
            continue
        bare, group, negate = _prefixes(key)
        name, _, lookup = bare.partition("__")
        if name in PROTECTED_FIELDS:
            raise ListQueryError(403, f"Filtering on {name} is not allowed.")
        if name not in fields:
            extra[key] = raw
            continue
        lookup = lookup or "exact"
        value = _value(name, lookup, raw)
        filters.append(Filter(fields[name], lookup, value, negate=negate, group=group))
    return ListQuery(
        filters=tuple(filters),
        order=_order(params.get("order_by") or default_order, fields),
        page=_positive_int(params.get("page"), 1, "page"),
        page_size=min(
            _positive_int(params.get("page_size"), DEFAULT_PAGE_SIZE, "page_size"), MAX_PAGE_SIZE
        ),
        extra=extra,
    )


def _prefixes(key: str) -> tuple[str, str | None, bool]:
    """Strip AWX's `chain__`/`or__` then `not__` prefixes: (key, OR group, negated)."""
    group = None
    if key.startswith("chain__"):
        key = key.removeprefix("chain__")
    elif key.startswith("or__"):
        key, group = key.removeprefix("or__"), "or"
    negate = key.startswith("not__")
    return key.removeprefix("not__"), group, negate


def _search(raw: str, search_fields: tuple[str, ...], fields: Mapping[str, str]) -> list[Filter]:
    """`search=a b` (or `a,b`): every term must occur, case-insensitively, in a search field."""
    terms = raw.replace(",", " ").split()
    return [
        Filter(fields[name], "icontains", term, group=f"search {index}")
        for index, term in enumerate(terms)
        for name in search_fields
    ]


def unknown_filters(query: ListQuery, allowed: frozenset[str] = frozenset()) -> None:
    """Reject leftover parameters that look like filters on unknown fields (AWX gives 400)."""
    for key in query.extra:
        name = _prefixes(key)[0].split("__", 1)[0]
        if name not in allowed:
            raise ListQueryError(400, f"Invalid field name: {name}")


def page_links(
    path: str, params: Mapping[str, str], query: ListQuery, count: int
) -> dict[str, Any]:
    """`next`/`previous` as server-relative paths, keeping the other query parameters."""

    def link(page: int) -> str:
        kept = {k: v for k, v in params.items() if k != "page"}
        kept["page"] = str(page)
        from urllib.parse import urlencode

        return f"{path}?{urlencode(kept)}"

    last_page = max(1, -(-count // query.page_size))
    return {
        "next": link(query.page + 1) if query.page < last_page else None,
        "previous": link(query.page - 1) if query.page > 1 else None,
    }


def page_out_of_range(query: ListQuery, count: int) -> bool:
    return query.page > 1 and (query.page - 1) * query.page_size >= count


def _clause(item: Filter) -> tuple[str, list[Any]]:
    column, lookup, value = item.column, item.lookup, item.value
    if lookup in _SQL_OPERATORS:
        return f"{column} {_SQL_OPERATORS[lookup]} ?", [value]
    if lookup == "in":
        marks = ", ".join("?" for _ in value) or "NULL"
        return f"{column} IN ({marks})", list(value)
    if lookup == "isnull":
        return f"{column} IS {'' if value else 'NOT '}NULL", []
    if lookup == "iexact":
        return f"lower({column}) = lower(?)", [value]
    if lookup == "startswith":
        return f"substr({column}, 1, ?) = ?", [len(str(value)), value]
    if lookup == "icontains":
        return f"instr(lower({column}), lower(?)) > 0", [value]
    raise ListQueryError(400, f"Unsupported lookup: {lookup}")


def _value(name: str, lookup: str, raw: str) -> Any:
    if lookup == "isnull":
        return raw.lower() in ("true", "1", "yes")
    if lookup == "in":
        return [_scalar(name, part) for part in raw.split(",") if part != ""]
    if lookup not in (*_SQL_OPERATORS, "iexact", "startswith", "icontains"):
        raise ListQueryError(400, f"Unsupported lookup: {lookup}")
    return _scalar(name, raw)


def _scalar(name: str, raw: str) -> Any:
    if name in TIME_FIELDS:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
        except ValueError as exc:
            raise ListQueryError(400, f"Enter a valid date/time for {name}.") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name in ("id", "job_template", "workflow_job_template", "counter", "start_line"):
        try:
            return int(raw)
        except ValueError as exc:
            raise ListQueryError(400, f"Enter a whole number for {name}.") from exc
    if name in ("failed", "changed"):
        return int(raw.lower() in ("true", "1", "yes"))
    return raw


def _order(raw: str, fields: Mapping[str, str]) -> tuple[tuple[str, bool], ...]:
    order = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-")
        if name not in fields:
            raise ListQueryError(400, f"Invalid field name: {name}")
        order.append((fields[name], descending))
    return tuple(order) or (("id", False),)


def _positive_int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError as exc:
        raise ListQueryError(404, "Invalid page.") from exc
    if number < 1:
        raise ListQueryError(404, "Invalid page.")
    return number
