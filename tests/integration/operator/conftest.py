"""Fixtures of the operator integration tests: one stack per module that asks for it."""

from collections.abc import Iterator

import pytest

from tests.harness.operators import OperatorStack, operator_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorStack]:
    """AAP direct, simulated jobs (as long as each instance's annotation says), its operator
    running, no fulfillment service."""
    with operator_stack(tmp_path_factory.mktemp("stack") / "state") as opened:
        yield opened
