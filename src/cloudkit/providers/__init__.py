"""Providers: how automation is launched, observed and canceled (AAP direct, EDA webhooks).

Owns the Provider protocol, its result types and typed errors. Must not decide lifecycle
policy (that is cloudkit.lifecycle) nor touch Kubernetes (that is cloudkit.operator).
"""

from cloudkit.providers.base import (
    CancelAnswer,
    DeprovisionAction,
    DeprovisionResult,
    JobReading,
    LaunchResult,
    Provider,
    ProviderCapabilities,
    ProviderError,
    ProviderInvalidResponse,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnauthorized,
    ProviderUnavailable,
)

__all__ = [
    "CancelAnswer",
    "DeprovisionAction",
    "DeprovisionResult",
    "JobReading",
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
