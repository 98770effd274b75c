"""Plugins and ordering for every tier: the CPU each test costs (`--cpu-top N`, `--cpu-json
PATH`), and the longest files first.

Under `pytest -n N --dist loadfile` a file is a unit of work, handed out in collection order; a
long file handed out last keeps one worker busy while the others idle, and the run's end waits
for it. So the files that take longest (measured, `LONGEST_FILES`) go first whatever their tier,
then the rest tier by tier, the longest tiers first (e2e, integration, contract, unit); a file's
own tests keep their order, and every worker collects the same order, as xdist requires.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.harness.cpu_report", "pytester"]

LONGEST_FILES = (
    "tests/e2e/test_eda_stack.py",
    "tests/integration/leadership/test_leadership_failover.py",
    "tests/e2e/test_aap_stack.py",
    "tests/contract/playbooks/test_playbooks.py",
    "tests/e2e/test_scenario_with_faults.py",
    "tests/e2e/test_bench_latency.py",
    "tests/integration/resilience/test_resilience_fulfillment_restarts.py",
    "tests/integration/resilience/test_resilience_no_token_leaks.py",
    "tests/integration/operator/test_untrusted_input.py",
    "tests/unit/lifecycle/test_mutants.py",
    "tests/integration/operator/test_operator_aap.py",
    "tests/unit/operator/test_mutants.py",
)
"""Longest first, by the wall time of each file in a whole `make test` (`make test
CPU_JSON=cpu.json`: its tests' `wall_s` summed per file). The mutant tables are here although
they cost little CPU: each is a minute or two of forked runs, too long to start last."""
TIERS_LONGEST_FIRST = ("tests/e2e/", "tests/integration/", "tests/contract/", "tests/unit/")


def handout_rank(nodeid: str) -> tuple[int, int]:
    """Where a test's file goes in the hand-out: a long file by its rank, the others after
    them by tier."""
    path = nodeid.split("::", 1)[0]
    long_rank = LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)
    tier = next(
        (rank for rank, tier in enumerate(TIERS_LONGEST_FIRST) if path.startswith(tier)),
        len(TIERS_LONGEST_FIRST),
    )
    return long_rank, tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: handout_rank(item.nodeid))  # stable: each file stays in order
