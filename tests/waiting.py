"""Waiting on a condition with a deadline, the one way tests wait (never a sleep that hopes).

`until` is for async reads; `until_sync` is the same loop for blocking reads (kubectl,
the synchronous Kubernetes client, /proc), so every wait names what it waited for and the
last value it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


def _expired(within: float, what: str, value: object) -> AssertionError:
    return AssertionError(f"{what} not met within {within:g}s; last value: {value}")


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
            raise _expired(within, what, value)
        await asyncio.sleep(interval)


def until_sync(
    read: Callable[[], Any],
    check: Callable[[Any], bool],
    *,
    within: float = 10.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """`until` for a blocking read (a subprocess, a synchronous client)."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise _expired(within, what, value)
        time.sleep(interval)
