"""Helpers for the provider contract tests (a unique module name: `conftest` is ambiguous).

`eventually` polls with a deadline, never a fixed sleep; `instance` builds a ComputeInstance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from cloudkit.providers.aap import AapProvider

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates.yml"

T = TypeVar("T")


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float = 30.0
) -> T:
    """Call `read` until `done` holds for its value; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within}s")
        await asyncio.sleep(0.05)


def instance(name: str = "vm1", **status: Any) -> dict[str, Any]:
    """A ComputeInstance as the operator would hand it to a provider."""
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": name, "namespace": "tenant-a", "uid": f"uid-{name}"},
        "spec": {"templateID": "small", "cores": 1},
        "status": status,
    }


ProviderFactory = Callable[..., AapProvider]
