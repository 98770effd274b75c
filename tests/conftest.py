"""Plugins and ordering for every tier: the CPU each test costs (`--cpu-top N`, `--cpu-json
PATH`), and the costliest tiers first.

Under `pytest -n N --dist loadfile` a file is a unit of work, handed out in collection order; a
long end-to-end file handed out last keeps one worker busy while the others idle. So files run
tier by tier, the longest tiers first (e2e, integration, contract, unit); a file's own tests keep
their order, and every worker collects the same order, as xdist requires.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.harness.cpu_report", "pytester"]

TIERS_LONGEST_FIRST = ("tests/e2e/", "tests/integration/", "tests/contract/", "tests/unit/")


def _tier(item: pytest.Item) -> int:
    path = item.nodeid
    return next(
        (rank for rank, tier in enumerate(TIERS_LONGEST_FIRST) if path.startswith(tier)),
        len(TIERS_LONGEST_FIRST),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_tier)  # stable: each file's tests stay together and in order
