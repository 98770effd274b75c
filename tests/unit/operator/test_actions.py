"""Provider results and typed errors become the lifecycle core's outcomes (pure: an in-memory
provider stands in for the backend; the real providers have their own contract tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudkit.api.jobs import AAP_CAPABILITIES, JobReading, JobState, JobType, ProviderCapabilities
from cloudkit.lifecycle.types import (
    CancelJob,
    CancelOutcome,
    FailureKind,
    FindJob,
    IOAction,
    LaunchDeprovision,
    LaunchOutcome,
    LaunchProvision,
    LookupOutcome,
    Outcome,
    PollJob,
    PollOutcome,
)
from cloudkit.operator.actions import execute
from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    DeprovisionResult,
    LaunchResult,
    ProviderError,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnauthorized,
    ProviderUnavailable,
)


class Backend:
    """Answers from a script; raises the given error instead when one is set."""

    def __init__(self) -> None:
        self.error: ProviderError | None = None
        self.deprovision = DeprovisionResult(
            DeprovisionAction.TRIGGERED, "9", JobState.PENDING, "Deprovisioning job triggered", True
        )
        self.cancel = CancelAnswer.REQUESTED
        self.found: JobReading | None = None
        self.calls: list[tuple[str, Any]] = []

    def _maybe_fail(self) -> None:
        if self.error is not None:
            raise self.error

    @property
    def name(self) -> str:
        return "test"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return AAP_CAPABILITIES

    async def trigger_provision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> LaunchResult:
        self.calls.append(("provision", correlation_id))
        self._maybe_fail()
        return LaunchResult("5", JobState.PENDING, "Provisioning job triggered")

    async def provision_status(self, job_id: str) -> JobReading:
        self._maybe_fail()
        return JobReading(job_id, JobState.RUNNING, "running")

    async def trigger_deprovision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> DeprovisionResult:
        self._maybe_fail()
        return self.deprovision

    async def deprovision_status(self, job_id: str) -> JobReading:
        self._maybe_fail()
        return JobReading(job_id, JobState.SUCCEEDED, "successful")

    async def cancel_job(self, job_id: str) -> CancelAnswer:
        self._maybe_fail()
        return self.cancel

    async def find_job(
        self, job_type: JobType, correlation_id: str, *, since: datetime
    ) -> JobReading | None:
        self._maybe_fail()
        return self.found

    async def close(self) -> None:
        pass


INSTANCE: dict[str, Any] = {"metadata": {"name": "vm", "namespace": "ns"}}


class NoVms:
    """Job actions never touch VirtualMachineInstances."""

    async def delete_vmi(self, namespace: str, name: str) -> bool:
        raise AssertionError("a job action deleted a VirtualMachineInstance")


async def run(backend: Backend, action: IOAction) -> Outcome:
    return await execute(backend, action, INSTANCE, vms=NoVms())


async def test_launches() -> None:
    backend = Backend()
    launched = await run(backend, LaunchProvision("c1"))
    assert launched == LaunchOutcome(
        JobType.PROVISION,
        "c1",
        reading=JobReading("5", JobState.PENDING, "Provisioning job triggered"),
    )
    deprovision = await run(backend, LaunchDeprovision("c2"))
    assert isinstance(deprovision, LaunchOutcome)
    assert deprovision.reading == JobReading("9", JobState.PENDING, "Deprovisioning job triggered")
    assert deprovision.block_deletion_on_failure is True
    assert not deprovision.waiting and not deprovision.skipped


async def test_deprovision_waiting_carries_the_provision_reading() -> None:
    backend = Backend()
    backend.deprovision = DeprovisionResult(
        DeprovisionAction.WAITING, "5", JobState.RUNNING, "running", True
    )
    outcome = await run(backend, LaunchDeprovision("c2"))
    assert isinstance(outcome, LaunchOutcome)
    assert outcome.waiting
    assert outcome.reading == JobReading("5", JobState.RUNNING, "running")


async def test_deprovision_skipped() -> None:
    backend = Backend()
    backend.deprovision = DeprovisionResult(DeprovisionAction.SKIPPED)
    outcome = await run(backend, LaunchDeprovision("c2"))
    assert isinstance(outcome, LaunchOutcome)
    assert outcome.skipped and outcome.reading is None


async def test_poll_cancel_find() -> None:
    backend = Backend()
    assert await run(backend, PollJob(JobType.PROVISION, "5")) == PollOutcome(
        JobType.PROVISION, "5", reading=JobReading("5", JobState.RUNNING, "running")
    )
    assert await run(backend, PollJob(JobType.DEPROVISION, "9")) == PollOutcome(
        JobType.DEPROVISION, "9", reading=JobReading("9", JobState.SUCCEEDED, "successful")
    )
    assert await run(backend, CancelJob("5")) == CancelOutcome("5", accepted=True)
    backend.cancel = CancelAnswer.ALREADY_TERMINAL
    assert await run(backend, CancelJob("5")) == CancelOutcome("5", already_terminal=True)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert await run(backend, FindJob(JobType.PROVISION, "c1", since)) == (
        LookupOutcome(JobType.PROVISION, "c1")
    )


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (ProviderNotFound("gone"), FailureKind.NOT_FOUND, False),
        (ProviderNotAllowed("no"), FailureKind.NOT_ALLOWED, False),
        (ProviderUnauthorized("401"), FailureKind.UNAUTHORIZED, True),
        (ProviderUnavailable("down"), FailureKind.UNAVAILABLE, True),
    ],
)
async def test_errors_become_failures(
    error: ProviderError, kind: FailureKind, retryable: bool
) -> None:
    backend = Backend()
    backend.error = error
    for action in (
        LaunchProvision("c1"),
        LaunchDeprovision("c2"),
        PollJob(JobType.PROVISION, "5"),
        CancelJob("5"),
        FindJob(JobType.PROVISION, "c1", datetime(2026, 1, 1, tzinfo=UTC)),
    ):
        outcome = await run(backend, action)
        failure = outcome.failure
        assert failure is not None, action
        assert failure.kind is kind
        assert failure.retryable is retryable
        assert failure.message == str(error)


async def test_rate_limit_carries_retry_after() -> None:
    backend = Backend()
    backend.error = ProviderRateLimited("slow down", retry_after=2.5)
    outcome = await run(backend, LaunchProvision("c1"))
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureKind.RATE_LIMITED
    assert outcome.failure.retry_after == timedelta(seconds=2.5)
