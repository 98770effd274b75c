"""Waiting on a condition with a deadline, the one way tests wait (never a sleep that hopes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    read: Callable[[], Awaitable[Any]],
    check: Callable[[Any], bool],
    *,
    within: float = 10.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Read until `check` holds and return that value; fail after `within` seconds, naming
    `what` and the last value read."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within:g}s; last value: {value}")
        await asyncio.sleep(interval)
