"""Executes the lifecycle core's one I/O action and returns its outcome.

Job actions go to the provider; RestartVirtualMachine deletes a VirtualMachineInstance through
the Kubernetes API (KubeVirt re-creates it). Results and typed errors are translated into the
core's outcome types here and nowhere else: a ProviderError, a refused or failed delete never
escapes (each becomes a Failure the core decides on). Anything else (a bug, a cancellation)
propagates to the work queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

import aiohttp

from cloudkit.api.jobs import JobReading, JobType
from cloudkit.lifecycle.types import (
    CancelJob,
    CancelOutcome,
    Failure,
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
    RestartOutcome,
    RestartVirtualMachine,
)
from cloudkit.operator.kube import KubeError
from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    Provider,
    ProviderError,
    ProviderInvalidResponse,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnauthorized,
    ProviderUnavailable,
)

_KINDS: tuple[tuple[type[ProviderError], FailureKind], ...] = (
    (ProviderNotFound, FailureKind.NOT_FOUND),
    (ProviderNotAllowed, FailureKind.NOT_ALLOWED),
    (ProviderUnauthorized, FailureKind.UNAUTHORIZED),
    (ProviderRateLimited, FailureKind.RATE_LIMITED),
    (ProviderUnavailable, FailureKind.UNAVAILABLE),
    (ProviderInvalidResponse, FailureKind.INVALID_RESPONSE),
)


class VmiDeleter(Protocol):
    """Deletes the VirtualMachineInstance of a VM (cloudkit.operator.kube.Kube is one)."""

    async def delete_vmi(self, namespace: str, name: str) -> bool:
        """True once deletion was requested; False if there was none (404). Raises KubeError."""
        ...


def failure_from(error: ProviderError) -> Failure:
    kind = next((k for cls, k in _KINDS if isinstance(error, cls)), FailureKind.UNAVAILABLE)
    retry_after = (
        timedelta(seconds=error.retry_after) if isinstance(error, ProviderRateLimited) else None
    )
    return Failure(kind, error.message, retryable=error.retryable, retry_after=retry_after)


async def execute(
    provider: Provider, action: IOAction, instance: dict[str, Any], *, vms: VmiDeleter
) -> Outcome:
    """Run `action` for `instance` (the object as last written, with the status of this pass);
    `vms` deletes VirtualMachineInstances for a restart."""
    match action:
        case LaunchProvision(correlation_id=cid):
            return await _launch_provision(provider, instance, cid)
        case LaunchDeprovision(correlation_id=cid):
            return await _launch_deprovision(provider, instance, cid)
        case PollJob(job_type=job_type, job_id=job_id):
            return await _poll(provider, job_type, job_id)
        case CancelJob(job_id=job_id):
            return await _cancel(provider, job_id)
        case FindJob(job_type=job_type, correlation_id=cid, since=since):
            try:
                found = await provider.find_job(job_type, cid, since=since)
            except ProviderError as error:
                return LookupOutcome(job_type, cid, failure=failure_from(error))
            return LookupOutcome(job_type, cid, reading=found)
        case RestartVirtualMachine(namespace=namespace, name=name):
            return await restart_vm(vms, namespace, name)
    raise TypeError(f"unknown I/O action {action!r}")  # pragma: no cover


async def _launch_provision(provider: Provider, instance: dict[str, Any], cid: str) -> Outcome:
    try:
        launched = await provider.trigger_provision(instance, correlation_id=cid)
    except ProviderError as error:
        return LaunchOutcome(JobType.PROVISION, cid, failure=failure_from(error))
    reading = JobReading(launched.job_id, launched.state, launched.message)
    return LaunchOutcome(JobType.PROVISION, cid, reading=reading)


async def _launch_deprovision(provider: Provider, instance: dict[str, Any], cid: str) -> Outcome:
    try:
        result = await provider.trigger_deprovision(instance, correlation_id=cid)
    except ProviderError as error:
        return LaunchOutcome(JobType.DEPROVISION, cid, failure=failure_from(error))
    block = result.block_deletion_on_failure
    if result.action is DeprovisionAction.SKIPPED:
        return LaunchOutcome(
            JobType.DEPROVISION, cid, skipped=True, block_deletion_on_failure=block
        )
    reading = JobReading(result.job_id, result.state, result.message)
    if result.action is DeprovisionAction.WAITING:
        # The reading is the provision job's (the provider's safety net refused to launch).
        return LaunchOutcome(
            JobType.DEPROVISION, cid, reading=reading, waiting=True, block_deletion_on_failure=block
        )
    return LaunchOutcome(JobType.DEPROVISION, cid, reading=reading, block_deletion_on_failure=block)


async def _poll(provider: Provider, job_type: JobType, job_id: str) -> Outcome:
    try:
        if job_type is JobType.PROVISION:
            reading = await provider.provision_status(job_id)
        else:
            reading = await provider.deprovision_status(job_id)
    except ProviderError as error:
        return PollOutcome(job_type, job_id, failure=failure_from(error))
    return PollOutcome(job_type, job_id, reading=reading)


async def _cancel(provider: Provider, job_id: str) -> Outcome:
    try:
        answer = await provider.cancel_job(job_id)
    except ProviderError as error:
        return CancelOutcome(job_id, failure=failure_from(error))
    return CancelOutcome(
        job_id,
        accepted=answer is CancelAnswer.REQUESTED,
        already_terminal=answer is CancelAnswer.ALREADY_TERMINAL,
    )


async def restart_vm(vms: VmiDeleter, namespace: str, name: str) -> RestartOutcome:
    """Delete the VM's VirtualMachineInstance; a missing one is `missing`, not a failure."""
    try:
        deleted = await vms.delete_vmi(namespace, name)
    except KubeError as error:
        return RestartOutcome(namespace, name, failure=_delete_failure(error))
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        # The message names the error type only: a connection error's text can hold the URL.
        detail = f"deleting VirtualMachineInstance {namespace}/{name}: {type(error).__name__}"
        return RestartOutcome(
            namespace, name, failure=Failure(FailureKind.UNAVAILABLE, detail, retryable=True)
        )
    return RestartOutcome(namespace, name, missing=not deleted)


def _delete_failure(error: KubeError) -> Failure:
    """Kubernetes answers as the core's failure kinds: refusals are not retried by themselves."""
    status = error.status or 0
    message = str(error)
    if status == 401:
        return Failure(FailureKind.UNAUTHORIZED, message)
    if status == 429:
        return Failure(FailureKind.RATE_LIMITED, message, retry_after=error.retry_after)
    if 400 <= status < 500:
        return Failure(FailureKind.NOT_ALLOWED, message, retryable=False)
    return Failure(FailureKind.UNAVAILABLE, message)
