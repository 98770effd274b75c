"""Settings → lifecycle config and provider; written statuses → job metrics (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from cloudkit.api.jobs import AAP_CAPABILITIES, EDA_CAPABILITIES, JobState
from cloudkit.api.models import ComputeInstanceStatus, JobStatus
from cloudkit.operator.metrics import JobTracker, OperatorMetrics
from cloudkit.operator.settings import load_settings
from cloudkit.operator.startup import build_provider, lifecycle_config
from cloudkit.providers.aap import AapProvider
from cloudkit.providers.eda import EdaProvider

AAP = {
    "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
    "CLOUDKIT_AAP_URL": "http://aap.invalid/api",
    "CLOUDKIT_AAP_TOKEN": "t",
    "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
    "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
    "CLOUDKIT_AAP_STATUS_POLL_INTERVAL": "20s",
    "CLOUDKIT_MAX_JOB_HISTORY": "4",
}
EDA = {
    "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK": "http://eda.invalid/p",
    "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": "http://eda.invalid/d",
}


def test_adaptive_and_fixed_polling() -> None:
    adaptive = lifecycle_config(load_settings(AAP))
    assert adaptive.provider_name == "aap"
    assert adaptive.capabilities == AAP_CAPABILITIES
    assert adaptive.poll_interval == timedelta(seconds=20)
    assert adaptive.first_poll == timedelta(milliseconds=500)
    assert adaptive.max_job_history == 4
    fixed = lifecycle_config(load_settings({**AAP, "CLOUDKIT_POLL_POLICY": "fixed"}))
    assert fixed.poll_every_pass and not adaptive.poll_every_pass
    assert fixed.poll_interval == timedelta(seconds=20)
    eda = lifecycle_config(load_settings(EDA))
    assert eda.capabilities == EDA_CAPABILITIES


def test_notifications_are_heard_only_from_aap_with_an_address_and_a_token() -> None:
    """Only then may the core take their readings and poll as a net (startup.py)."""
    heard = {**AAP, "CLOUDKIT_NOTIFICATION_ADDRESS": "127.0.0.1:0"}
    token = {"CLOUDKIT_NOTIFICATION_TOKEN": "s3cret"}
    assert lifecycle_config(load_settings({**heard, **token})).job_notifications
    assert not lifecycle_config(load_settings(heard)).job_notifications, "no token"
    assert not lifecycle_config(load_settings({**AAP, **token})).job_notifications, "no address"
    fixed = {**heard, **token, "CLOUDKIT_POLL_POLICY": "fixed"}
    assert not lifecycle_config(load_settings(fixed)).job_notifications
    eda = {**EDA, "CLOUDKIT_NOTIFICATION_ADDRESS": "127.0.0.1:0", **token}
    assert not lifecycle_config(load_settings(eda)).job_notifications


async def test_providers_from_settings() -> None:
    aap = build_provider(load_settings(AAP))
    eda = build_provider(load_settings(EDA))
    assert isinstance(aap, AapProvider) and aap.name == "aap"
    assert isinstance(eda, EdaProvider) and eda.name == "eda"
    await aap.close()
    await eda.close()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_job_metrics_follow_written_statuses() -> None:
    registry = CollectorRegistry()
    tracker = JobTracker(OperatorMetrics(registry), "aap")
    launched = datetime(2026, 1, 1, tzinfo=UTC)
    running = JobStatus(id="5", state=JobState.RUNNING, launched_at=launched)
    tracker.observe("ns/a", ComputeInstanceStatus(provision_job=running))
    tracker.observe("ns/b", ComputeInstanceStatus(provision_job=running.model_copy()))
    in_flight = {"provider": "aap", "type": "provision"}
    assert sample(registry, "cloudkit_jobs_in_flight", **in_flight) == 2
    relaunched = running.model_copy(update={"id": "6"})  # the same instance, another job
    tracker.observe("ns/b", ComputeInstanceStatus(provision_job=relaunched))
    tracker.observe("ns/b", ComputeInstanceStatus(provision_job=relaunched))
    assert sample(registry, "cloudkit_jobs_in_flight", **in_flight) == 2

    done = running.model_copy(
        update={"state": JobState.SUCCEEDED, "finished_at": launched + timedelta(seconds=42)}
    )
    tracker.observe("ns/a", ComputeInstanceStatus(provision_job=done))
    tracker.observe("ns/a", ComputeInstanceStatus(provision_job=done))  # counted once
    assert sample(registry, "cloudkit_jobs_in_flight", **in_flight) == 1
    finished = {"provider": "aap", "type": "provision", "state": "Succeeded"}
    assert sample(registry, "cloudkit_job_duration_seconds_count", **finished) == 1
    assert sample(registry, "cloudkit_job_duration_seconds_sum", **finished) == 42

    tracker.forget("ns/b")
    assert sample(registry, "cloudkit_jobs_in_flight", **in_flight) == 0
