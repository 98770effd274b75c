"""Job states and types shared by the lifecycle core, the providers and the status model."""

from enum import StrEnum


class JobState(StrEnum):
    """State of an automation job as shown in ComputeInstance status (upstream's enum)."""

    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    UNKNOWN = "Unknown"

    @property
    def terminal(self) -> bool:
        """Succeeded, Failed and Canceled are final; Unknown is not (upstream semantics)."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})


class JobType(StrEnum):
    PROVISION = "provision"
    DEPROVISION = "deprovision"
