"""Fixtures of the operator integration tests (defined in operator_stack)."""

from tests.harness.operator_process import (  # noqa: F401
    automation,
    cluster,
    loop_thread,
    notification_port,
    operator,
)
