"""The Provider protocol, its result types and its typed errors.

A provider only talks to its backend. Policy (when to launch, cancel-before-deprovision,
retries, backoff) is the lifecycle core's; the provider reports facts the core decides on.
JobReading and ProviderCapabilities live in cloudkit.api.jobs (the lifecycle core reads them and
must not import providers); they are re-exported here.
Errors are types so the core can tell "retry later" from "give up" without parsing strings;
their messages never contain credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from cloudkit.api.jobs import JobReading, JobState, JobType, ProviderCapabilities

# Explicit exports: JobReading, JobState, JobType and ProviderCapabilities are re-exported from
# cloudkit.api.jobs, which mypy --strict (no implicit re-export) only accepts when listed here.
__all__ = [
    "CancelAnswer",
    "DeprovisionAction",
    "DeprovisionResult",
    "JobReading",
    "JobState",
    "JobType",
    "LaunchResult",
    "Provider",
    "ProviderCapabilities",
    "ProviderError",
    "ProviderInvalidResponse",
    "ProviderNotAllowed",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderUnauthorized",
    "ProviderUnavailable",
]


@dataclass(frozen=True, slots=True)
class LaunchResult:
    job_id: str
    state: JobState
    message: str


class DeprovisionAction(StrEnum):
    TRIGGERED = "triggered"
    WAITING = "waiting"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DeprovisionResult:
    action: DeprovisionAction
    job_id: str = ""
    state: JobState = JobState.PENDING
    message: str = ""
    block_deletion_on_failure: bool = False


class CancelAnswer(StrEnum):
    REQUESTED = "requested"
    """The backend accepted the cancel (AAP 202); the job is not terminal yet."""
    ALREADY_TERMINAL = "already_terminal"
    """Nothing to cancel (AAP 405): the job already ended; read it to learn how."""


class ProviderError(Exception):
    """Base of every provider failure. `retryable` tells the core whether to try again."""

    retryable: bool = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


class ProviderNotFound(ProviderError):
    retryable = False


class ProviderNotAllowed(ProviderError):
    """The backend refused the operation (403, 405, ignored launch variables, bad request)."""

    retryable = False


class ProviderUnauthorized(ProviderError):
    """Credentials missing or rejected (401). Retried: an operator may fix the secret."""


class ProviderRateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """Connection refused, timeout, 5xx: the backend may come back."""


class ProviderInvalidResponse(ProviderError):
    """The backend answered something we cannot read (non-JSON, missing fields)."""


@runtime_checkable
class Provider(Protocol):
    """A way to run provisioning automation. All methods are async and raise ProviderError."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> ProviderCapabilities: ...

    async def trigger_provision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> LaunchResult: ...

    async def provision_status(self, job_id: str) -> JobReading: ...

    async def trigger_deprovision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> DeprovisionResult: ...

    async def deprovision_status(self, job_id: str) -> JobReading: ...

    async def cancel_job(self, job_id: str) -> CancelAnswer: ...

    async def find_job(
        self, job_type: JobType, correlation_id: str, *, since: datetime
    ) -> JobReading | None:
        """The job launched with this correlation id, or None if no launch reached the backend."""
        ...

    async def close(self) -> None: ...
