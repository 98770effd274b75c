"""Fixtures of the operator integration tests (defined in operator_stack)."""

from operator_stack import (  # noqa: F401
    automation,
    cluster,
    loop_thread,
    notification_port,
    operator,
)
