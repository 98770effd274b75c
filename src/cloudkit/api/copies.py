"""Deep copies of the resource models that share what cannot change instead of copying it.

The lifecycle core edits a copy of the status on every pass. pydantic's `model_copy(deep=True)`
goes through `copy.deepcopy`, which copies every datetime and enum through `__reduce_ex__` and
memoizes every object: that was half of `decide`'s time under load (docs/benchmarks/scale.md).
Strings, numbers, datetimes and enums are immutable, so sharing them is as safe as copying
them; models, lists and dicts are copied all the way down. Anything else falls back to
`copy.deepcopy`, so a new field type is never shared by mistake.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

_IMMUTABLE = (str, int, float, bytes, type(None), datetime, date, time, timedelta, Enum)
"""Values shared between a model and its copy (bool is an int; tuples may hold mutables)."""

M = TypeVar("M", bound=BaseModel)


def deep_copy(model: M) -> M:
    """A copy of `model` in which no mutable value is shared with the original."""
    clone = model.model_copy()  # shallow: its own __dict__, extras and fields-set
    fields = clone.__dict__
    for name, value in fields.items():
        fields[name] = _copied(value)
    extra = clone.__pydantic_extra__
    if extra:
        for name, value in extra.items():
            extra[name] = _copied(value)
    return clone


def _copied(value: Any) -> Any:
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, BaseModel):
        return deep_copy(value)
    if type(value) is list:
        return [_copied(item) for item in value]
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    return copy.deepcopy(value)
