"""Prometheus metrics of the operator and the job bookkeeping that feeds them.

Job metrics are derived from what the reconciles write (the status is the truth), not from the
provider calls: a job counts as in flight from the write that records its id until the write
that records a terminal state, and its duration is launch → finish as the status says.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from cloudkit.api.jobs import JobType
from cloudkit.api.models import ComputeInstanceStatus, JobStatus

JOB_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.job_duration = Histogram(
            "cloudkit_job_duration_seconds",
            "Launch to terminal state of automation jobs, as recorded in status.",
            ["provider", "type", "state"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.jobs_in_flight = Gauge(
            "cloudkit_jobs_in_flight",
            "Automation jobs launched and not yet terminal.",
            ["provider", "type"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "cloudkit_reconcile_errors_total",
            "Reconciles that ended with an error (retried with backoff).",
            registry=registry,
        )
        self.kubernetes_requests = Counter(
            "cloudkit_kubernetes_requests",
            "HTTP requests of the reconciles to the Kubernetes API (kopf's watches not included).",
            ["verb"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "cloudkit_reconcile_duration_seconds",
            "Wall time of one reconcile of one instance.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.launch_slots_in_use = Gauge(
            "cloudkit_launch_slots_in_use",
            "Provisioning launches in flight (intent or job not yet terminal), counted against "
            "CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT.",
            registry=registry,
        )
        self.launches_waiting = Gauge(
            "cloudkit_launches_waiting",
            "Instances waiting for a launch slot (Progressing reason WaitingForLaunchSlot).",
            registry=registry,
        )
        self.leader = Gauge(
            "cloudkit_leader",
            "1 while this replica leads (holds the Lease, or election is off), 0 on standby.",
            registry=registry,
        )


class JobTracker:
    """Turns successive written statuses of each instance into job metrics."""

    def __init__(self, metrics: OperatorMetrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider
        self._in_flight: dict[str, dict[JobType, str]] = {}
        """instance key → job type → id of its non-terminal job."""
        self._counts = dict.fromkeys(JobType, 0)
        """Non-terminal jobs by type: kept as `_in_flight` changes, not recounted per write (a
        recount of every instance on every status write was quadratic in a burst)."""
        for job_type in JobType:
            metrics.jobs_in_flight.labels(provider, job_type.value).set(0)

    def observe(self, key: str, status: ComputeInstanceStatus) -> None:
        """Call after every status this operator wrote (or read) for an instance."""
        current = self._in_flight.setdefault(key, {})
        before = set(current)
        for job_type, job in (
            (JobType.PROVISION, status.provision_job),
            (JobType.DEPROVISION, status.deprovision_job),
        ):
            self._observe_job(current, job_type, job)
        if not current:
            self._in_flight.pop(key, None)
        self._publish(before, set(current))

    def forget(self, key: str) -> None:
        """The instance is gone: whatever it had in flight no longer counts."""
        gone = self._in_flight.pop(key, None)
        if gone is not None:
            self._publish(set(gone), set())

    def _observe_job(
        self, current: dict[JobType, str], job_type: JobType, job: JobStatus | None
    ) -> None:
        tracked = current.get(job_type)
        if job is None or not job.id:
            return
        if not job.state.terminal:
            current[job_type] = job.id
            return
        if tracked == job.id:
            del current[job_type]
            duration = _seconds(job.launched_at, job.finished_at)
            if duration is not None:
                self._metrics.job_duration.labels(
                    self._provider, job_type.value, job.state.value
                ).observe(duration)
        elif tracked is not None:
            del current[job_type]

    def _publish(self, before: set[JobType], after: set[JobType]) -> None:
        """One instance's in-flight job types went from `before` to `after`."""
        for job_type in before ^ after:
            self._counts[job_type] += 1 if job_type in after else -1
            gauge = self._metrics.jobs_in_flight.labels(self._provider, job_type.value)
            gauge.set(self._counts[job_type])


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())
