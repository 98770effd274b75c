"""Standard conditions: set one, keeping lastTransitionTime unless its status changes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from cloudkit.api.models import ComputeInstanceStatus, Condition, ConditionType

Status = Literal["True", "False", "Unknown"]


def set_condition(
    status: ComputeInstanceStatus,
    type_: ConditionType,
    value: Status,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> None:
    for cond in status.conditions:
        if cond.type == type_.value:
            if cond.status != value:
                cond.last_transition_time = now
            cond.status = value
            cond.reason = reason
            cond.message = message
            cond.observed_generation = generation
            return
    status.conditions.append(
        Condition(
            type=type_.value,
            status=value,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def get_condition(status: ComputeInstanceStatus, type_: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_.value), None)


def remove_condition(status: ComputeInstanceStatus, type_: ConditionType) -> None:
    """Drop a condition that no longer applies (a past phase's must not linger)."""
    status.conditions = [c for c in status.conditions if c.type != type_.value]
