"""The EDA provider: provisioning and deprovisioning as webhooks to an EDA rulebook.

EDA gives no job handle back, so nothing can be polled, canceled or found again: completion
shows on the resource (the playbook sets annotations and removes the automation finalizer),
which the lifecycle core reads. This provider only sends webhooks and keeps upstream's optional
minimum interval between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloudkit.api.jobs import EDA_CAPABILITIES, JobReading, JobState, JobType, ProviderCapabilities
from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    DeprovisionResult,
    LaunchResult,
    ProviderNotAllowed,
    ProviderRateLimited,
)
from cloudkit.providers.eda import wire
from cloudkit.providers.eda.client import DEFAULT_TIMEOUT, WebhookClient

NO_POLLING_MESSAGE = "EDA provider does not support status polling"
DEPROVISION_STATUS_MESSAGE = (
    "EDA provider does not support status polling; completion is the automation finalizer's removal"
)


class EdaProvider:
    """Provider over two EDA webhook URLs (provision and deprovision); `token`, if given, is
    sent as a Bearer header with every webhook."""

    def __init__(
        self,
        provision_url: str,
        deprovision_url: str,
        *,
        token: str | None = None,
        minimum_request_interval: float = 0.0,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = {JobType.PROVISION: provision_url, JobType.DEPROVISION: deprovision_url}
        self._token = token
        self._client = WebhookClient(timeout=timeout)
        self._limiter = wire.RateLimiter(minimum_request_interval, clock=clock)

    @property
    def name(self) -> str:
        return "eda"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return EDA_CAPABILITIES

    async def _send(self, job_type: JobType, instance: dict[str, Any]) -> None:
        url = self._urls[job_type]
        key = wire.rate_limit_key(url, instance)
        remaining = self._limiter.remaining(key)
        if remaining > 0:
            raise ProviderRateLimited(
                f"EDA {job_type} webhook for this instance rate limited; "
                f"next allowed in {remaining:.1f}s",
                retry_after=remaining,
            )
        await self._client.post(wire.webhook_request(url, instance, token=self._token))
        self._limiter.record(key)

    async def trigger_provision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> LaunchResult:
        # correlation_id is not sent: EDA has no way to find a launch again (finds_jobs False).
        await self._send(JobType.PROVISION, instance)
        return LaunchResult(
            wire.next_job_id(instance),
            JobState.RUNNING,
            "Webhook sent to EDA, provisioning in progress",
        )

    async def provision_status(self, job_id: str) -> JobReading:
        return JobReading(job_id=job_id, state=JobState.UNKNOWN, message=NO_POLLING_MESSAGE)

    async def trigger_deprovision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> DeprovisionResult:
        if not wire.has_automation_finalizer(instance):
            # Nothing was provisioned (or the playbook never got far enough to say so).
            return DeprovisionResult(DeprovisionAction.SKIPPED)
        await self._send(JobType.DEPROVISION, instance)
        return DeprovisionResult(
            DeprovisionAction.TRIGGERED,
            job_id=wire.next_job_id(instance),
            state=JobState.RUNNING,
            message="Webhook sent to EDA, deprovisioning in progress",
            block_deletion_on_failure=False,
        )

    async def deprovision_status(self, job_id: str) -> JobReading:
        return JobReading(job_id=job_id, state=JobState.UNKNOWN, message=DEPROVISION_STATUS_MESSAGE)

    async def cancel_job(self, job_id: str) -> CancelAnswer:
        raise ProviderNotAllowed("EDA provider cannot cancel jobs")

    async def find_job(
        self, job_type: JobType, correlation_id: str, *, since: datetime
    ) -> JobReading | None:
        return None

    async def close(self) -> None:
        await self._client.close()
