"""The AAP-direct provider: launches, polls, cancels and finds job-template runs.

It reports facts (job ids, readings, cancel outcomes); when to launch, cancel or give up is the
lifecycle core's decision. The one piece of policy kept here is a safety net: no deprovision
job is launched while AAP still reports the provision job active, so two playbooks never race on
one VM even if the core's cancel-first step was skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudkit.api.jobs import (
    AAP_CAPABILITIES,
    JobReading,
    JobState,
    JobType,
    ProviderCapabilities,
)
from cloudkit.providers.aap import wire
from cloudkit.providers.aap.client import DEFAULT_TIMEOUT, AapClient
from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    DeprovisionResult,
    LaunchResult,
    ProviderNotAllowed,
    ProviderNotFound,
)


def _provision_job_id(instance: Mapping[str, Any]) -> wire.AapJobId | None:
    """The AAP id of status.provisionJob, if there is one AAP could report on.

    A job another provider ran (EDA, before a provider switch) says so in `provider`; in a
    status written before jobs recorded it, its id does not parse as an AAP id either.
    """
    status = instance.get("status")
    job = status.get("provisionJob") if isinstance(status, Mapping) else None
    if not isinstance(job, Mapping) or job.get("provider") not in {None, "aap"}:
        return None
    job_id = job.get("id")
    if not isinstance(job_id, str) or not job_id:
        return None
    try:
        return wire.AapJobId.parse(job_id)
    except ProviderNotAllowed:
        return None


class AapProvider:
    """Provider over the AWX/AAP controller API (job templates and workflow job templates)."""

    def __init__(
        self,
        url: str,
        token: str,
        provision_template: str,
        deprovision_template: str,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        attempts: int = 3,
    ) -> None:
        self._client = AapClient(
            url,
            token,
            ca_bundle=ca_bundle,
            verify_tls=verify_tls,
            timeout=timeout,
            attempts=attempts,
        )
        self._templates = {
            JobType.PROVISION: provision_template,
            JobType.DEPROVISION: deprovision_template,
        }

    @property
    def name(self) -> str:
        return "aap"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return AAP_CAPABILITIES

    async def _launch(
        self, job_type: JobType, instance: Mapping[str, Any], correlation_id: str
    ) -> wire.AapJobId:
        extra_vars = wire.launch_extra_vars(instance, correlation_id)
        return await self._client.launch(self._templates[job_type], extra_vars)

    async def _read(self, job_id: str) -> JobReading:
        parsed = wire.AapJobId.parse(job_id)
        try:
            return await self._client.job(parsed)
        except ProviderNotFound:
            # Only finished jobs are purged (cleanup_jobs never deletes active ones).
            return wire.purged_reading(job_id)

    async def trigger_provision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> LaunchResult:
        job_id = await self._launch(JobType.PROVISION, instance, correlation_id)
        return LaunchResult(str(job_id), JobState.PENDING, "Provisioning job triggered")

    async def provision_status(self, job_id: str) -> JobReading:
        return await self._read(job_id)

    async def trigger_deprovision(
        self, instance: dict[str, Any], *, correlation_id: str
    ) -> DeprovisionResult:
        provision_job = _provision_job_id(instance)
        if provision_job is not None:
            reading = await self._read(str(provision_job))
            if not reading.purged and not reading.state.terminal:
                return DeprovisionResult(
                    DeprovisionAction.WAITING,
                    job_id=reading.job_id,
                    state=reading.state,
                    message=reading.message,
                    block_deletion_on_failure=True,
                )
        job_id = await self._launch(JobType.DEPROVISION, instance, correlation_id)
        return DeprovisionResult(
            DeprovisionAction.TRIGGERED,
            job_id=str(job_id),
            state=JobState.PENDING,
            message="Deprovisioning job triggered",
            block_deletion_on_failure=True,
        )

    async def deprovision_status(self, job_id: str) -> JobReading:
        return await self._read(job_id)

    async def cancel_job(self, job_id: str) -> CancelAnswer:
        """202 → REQUESTED, 405 → ALREADY_TERMINAL; a 404 (purged) raises ProviderNotFound."""
        return await self._client.cancel(wire.AapJobId.parse(job_id))

    async def find_job(
        self, job_type: JobType, correlation_id: str, *, since: datetime
    ) -> JobReading | None:
        return await self._client.find(self._templates[job_type], correlation_id, since)

    async def close(self) -> None:
        await self._client.close()
