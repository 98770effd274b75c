"""Fixtures of the unit tier: the mutant server both mutant tables share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.mutants import MutantRunner


@pytest.fixture(scope="session")
def mutant_runner() -> Iterator[MutantRunner]:
    runner = MutantRunner()
    try:
        yield runner
    finally:
        runner.close()
