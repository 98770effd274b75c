"""From settings to running parts: the provider, its start-up check, the lifecycle config.

The AAP check (GET <url>/v2/me/) runs before anything is watched, so a wrong URL or token
stops the operator at once with one line naming the variable, instead of every instance
collecting "unauthorized" messages. The check uses the AAP client directly: the Provider
protocol has no such call (see the report to the providers' owner).
"""

from __future__ import annotations

import asyncio

from cloudkit.api.jobs import AAP_CAPABILITIES, EDA_CAPABILITIES
from cloudkit.lifecycle.types import LifecycleConfig
from cloudkit.operator.settings import OperatorSettings, PollPolicy
from cloudkit.providers.aap import AapClient, AapProvider
from cloudkit.providers.aap.messages import Request
from cloudkit.providers.base import (
    Provider,
    ProviderError,
    ProviderNotFound,
    ProviderUnauthorized,
    ProviderUnavailable,
)
from cloudkit.providers.eda import EdaProvider

CHECK_TIMEOUT = 10.0


class StartupError(Exception):
    """The operator cannot start; the message is one line for people, without secrets."""


def lifecycle_config(settings: OperatorSettings) -> LifecycleConfig:
    """The core's configuration. CLOUDKIT_POLL_POLICY=fixed is upstream's policy (reference
    §3.1), the benchmarks' baseline: every pass polls a running job, whatever woke it, and the
    next pass is due the full interval later (the reconciler adds upstream's extra pass after
    each write of its own). It is not a slower adaptive policy: a wake-up polls at once."""
    capabilities = AAP_CAPABILITIES if settings.provider == "aap" else EDA_CAPABILITIES
    return LifecycleConfig(
        provider_name=settings.provider,
        capabilities=capabilities,
        poll_interval=settings.poll_interval,
        first_poll=min(settings.first_poll, settings.poll_interval),
        max_job_history=settings.max_job_history,
        retry_backoff_min=settings.retry_backoff_min,
        retry_backoff_max=settings.retry_backoff_max,
        poll_every_pass=settings.poll_policy is PollPolicy.FIXED,
        job_notifications=hears_job_notifications(settings),
    )


def hears_job_notifications(settings: OperatorSettings) -> bool:
    """Whether job notifications bring readings the core may take instead of polls: AAP's,
    received (an address) and authenticated (a token: notifications.py takes no reading
    without one), under our adaptive policy (upstream's polls every pass whatever it hears)."""
    return (
        settings.provider == "aap"
        and settings.notification_address is not None
        and settings.notification_token is not None
        and settings.poll_policy is PollPolicy.ADAPTIVE
    )


def build_provider(settings: OperatorSettings) -> Provider:
    if settings.aap is not None:
        aap = settings.aap
        return AapProvider(
            aap.url,
            aap.token.get_secret_value(),
            aap.provision_template,
            aap.deprovision_template,
            ca_bundle=str(aap.ca_bundle) if aap.ca_bundle else None,
            verify_tls=aap.verify_tls,
        )
    if settings.eda is not None:
        eda = settings.eda
        return EdaProvider(
            eda.provision_webhook.get_secret_value(),
            eda.deprovision_webhook.get_secret_value(),
            token=eda.token.get_secret_value() if eda.token else None,
            minimum_request_interval=eda.minimum_request_interval.total_seconds(),
        )
    raise StartupError(f"CLOUDKIT_PROVISIONING_PROVIDER: no settings for {settings.provider}")


async def check_aap(settings: OperatorSettings) -> None:
    """GET <url>/v2/me/ with the token; raise StartupError naming the variable to fix.

    A rejected token or a wrong path fails at once. An unreachable controller is retried until
    CLOUDKIT_AAP_STARTUP_TIMEOUT: a stack may start the operator beside its backend, and a
    Deployment beside a restarting controller; past the deadline it is a configuration error.
    """
    aap = settings.aap
    if aap is None:
        return
    client = AapClient(
        aap.url,
        aap.token.get_secret_value(),
        ca_bundle=str(aap.ca_bundle) if aap.ca_bundle else None,
        verify_tls=aap.verify_tls,
        timeout=CHECK_TIMEOUT,
        attempts=1,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.aap_startup_timeout.total_seconds()
    delay = 0.2
    try:
        while True:
            try:
                await client.send(Request("GET", "v2/me/"), retry=False)
                return
            except ProviderUnavailable as error:
                if loop.time() + delay > deadline:
                    raise StartupError(
                        f"CLOUDKIT_AAP_URL {aap.url} is unreachable: {error}"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
    except ProviderUnauthorized:
        raise StartupError(
            f"CLOUDKIT_AAP_TOKEN was rejected by {aap.url} (401 on v2/me/); "
            "set a valid token in CLOUDKIT_AAP_TOKEN or CLOUDKIT_AAP_TOKEN_FILE"
        ) from None
    except ProviderNotFound:
        raise StartupError(
            f"CLOUDKIT_AAP_URL {aap.url} has no v2/me/; it must be the API root "
            "(e.g. https://host/api or https://host/api/controller)"
        ) from None
    except ProviderError as error:
        raise StartupError(
            f"CLOUDKIT_AAP_URL {aap.url}: the start-up check failed: {error}"
        ) from None
    finally:
        await client.close()
