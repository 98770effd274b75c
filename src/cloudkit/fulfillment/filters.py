"""List and stream filters (CEL over the object as `this`) and list order, parsed from query text.

Pure. A filter is compiled once per request and run on each candidate record, each run within
the product's CEL cost limit (cloudkit.cel.COST_LIMIT), the whole request within a time limit:
a filter that does not parse, spends a run's budget or outlasts the request's time is the
caller's error (400). A filter that fails on one record (a field the record lacks, a type
it does not have) does not select that record, as a SQL WHERE with a NULL does not: records
differ in which optional fields they carry.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from celpy import celtypes
from pydantic import BaseModel

from cloudkit.cel import Budget, CelError, compile_program, to_cel
from cloudkit.fulfillment.models import names_field
from cloudkit.fulfillment.store.base import Object, OrderKey

_ORDER_TERM = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?:\s+(asc|desc))?$", re.I)


class FilterError(ValueError):
    """A filter or order the server cannot use; the message names the problem."""


# One request's filter runs, all records together: the cost limit bounds one run, this bounds
# the sum (a cheap filter over very many records), so a request cannot hold a worker for long.
TIME_LIMIT_S = 10.0


class Filter:
    """A compiled CEL filter for one request (its time limit, if any, starts here)."""

    def __init__(self, source: str, *, time_limit_s: float | None = TIME_LIMIT_S) -> None:
        self.source = source
        self.time_limit_s = time_limit_s
        self._deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        try:
            self._program = compile_program(source)
        except CelError as exc:
            raise FilterError(f"filter: {exc}") from None
        self._now = celtypes.TimestampType(datetime.now(UTC))

    def matches(self, obj: Object, **extra: Any) -> bool:
        """True when the filter selects `obj`; FilterError when a limit is reached."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise FilterError(
                f"filter: took longer than {self.time_limit_s:g} s over the records; "
                "narrow the filter or the page"
            )
        budget = Budget()
        activation = {"this": to_cel(obj), "now": self._now}
        activation.update({name: to_cel(value) for name, value in extra.items()})
        try:
            result = self._program.run(activation, budget)
        except CelError:
            if budget.exceeded:
                raise FilterError(
                    f"filter: evaluation cost limit exceeded ({budget.limit} steps); "
                    "narrow the filter"
                ) from None
            return False
        return isinstance(result, bool | celtypes.BoolType) and bool(result)


def parse_filter(text: str | None, *, time_limit_s: float | None = TIME_LIMIT_S) -> Filter | None:
    """None for no filter (absent or blank)."""
    if text is None or not text.strip():
        return None
    return Filter(text, time_limit_s=time_limit_s)


def parse_order(text: str | None, model: type[BaseModel]) -> list[OrderKey]:
    """`metadata.name desc, id` → keys; FilterError naming a term that is not `path [asc|desc]`
    with a path of `model`'s fields."""
    if text is None or not text.strip():
        return []
    keys = []
    for term in text.split(","):
        found = _ORDER_TERM.match(term.strip())
        if found is None:
            raise FilterError(f"order: {term.strip()!r} is not 'field.path [asc|desc]'")
        if not names_field(model, found.group(1)):
            raise FilterError(f"order: {found.group(1)!r} is not a field")
        keys.append(OrderKey(found.group(1), (found.group(2) or "").lower() == "desc"))
    return keys
