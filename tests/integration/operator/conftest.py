"""Fixtures of the operator integration tests: one stack per module that asks for it."""

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.harness.in_process import ReconcilerStack, reconciler_stack
from tests.harness.operators import OperatorStack, operator_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorStack]:
    """AAP direct, simulated jobs (as long as each instance's annotation says), its operator
    running, no fulfillment service."""
    with operator_stack(tmp_path_factory.mktemp("stack") / "state") as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ReconcilerStack]:
    """A stack without an operator for the module's in-process reconcilers (each test its own
    reconciler and request counts)."""
    async with reconciler_stack(tmp_path_factory.mktemp("reconciler")) as shared:
        yield shared
