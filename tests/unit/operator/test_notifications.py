"""Which instance and which job reading an AWX job notification carries, and the readings kept
for the next pass (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudkit.api.jobs import JobReading, JobState
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.notifications import instance_of, job_reading_of
from cloudkit.operator.notified_readings import JOBS_KEPT, NotifiedReadings


def notification(extra_vars: Any) -> dict[str, Any]:
    return {"id": 7, "status": "successful", "extra_vars": extra_vars}


def test_instance_from_the_launch_payload() -> None:
    extra_vars = {
        "ansible_eda": {"event": {"payload": {"metadata": {"name": "vm1", "namespace": "ns"}}}},
        "cloudkit_correlation_id": "uid-provision-1",
    }
    assert instance_of(notification(json.dumps(extra_vars))) == InstanceKey("ns", "vm1")
    assert instance_of(notification(extra_vars)) == InstanceKey("ns", "vm1")


@pytest.mark.parametrize(
    "extra_vars",
    [
        "",
        "not json",
        "[]",
        json.dumps({"who": "else"}),
        json.dumps({"ansible_eda": {"event": {"payload": {"metadata": {"name": "x"}}}}}),
        json.dumps({"ansible_eda": {"event": {"payload": "text"}}}),
        None,
    ],
)
def test_notifications_about_nothing_of_ours(extra_vars: Any) -> None:
    assert instance_of(notification(extra_vars)) is None


def test_the_job_reading_a_notification_carries() -> None:
    """Under the id the status records: a workflow job's is `workflow-<n>`, a job's `<n>`."""
    assert job_reading_of({"id": 7, "type": "job", "status": "running"}) == JobReading(
        "7", JobState.RUNNING, "running"
    )
    assert job_reading_of({"id": 7, "status": "successful"}) == JobReading(
        "7", JobState.SUCCEEDED, "successful"
    ), "AWX's body may leave the type out: a job"
    workflow = job_reading_of({"id": 3, "type": "workflow_job", "status": "pending"})
    assert workflow == JobReading("workflow-3", JobState.PENDING, "pending")
    failed = job_reading_of({"id": 9, "status": "failed", "job_explanation": "boom"})
    assert failed == JobReading("9", JobState.FAILED, "failed", details="boom")


@pytest.mark.parametrize(
    "body",
    [
        {"id": "7", "status": "running"},
        {"id": True, "status": "running"},
        {"id": -1, "status": "running"},
        {"id": 7, "type": "project_update", "status": "running"},
        {"id": 7, "status": ""},
        {"id": 7},
        {"status": "running"},
    ],
)
def test_a_notification_that_names_no_job_of_ours_carries_no_reading(body: dict[str, Any]) -> None:
    assert job_reading_of(body) is None


KEY = InstanceKey("ns", "vm1")


def test_the_reading_furthest_along_is_kept_whatever_the_order_of_arrival() -> None:
    kept = NotifiedReadings()
    kept.heard(KEY, JobReading("7", JobState.RUNNING, "running"))
    kept.heard(KEY, JobReading("7", JobState.PENDING, "pending"))  # delivered late
    assert kept.of(KEY) == (JobReading("7", JobState.RUNNING, "running"),)
    kept.heard(KEY, JobReading("7", JobState.SUCCEEDED, "successful"))
    kept.heard(KEY, JobReading("7", JobState.RUNNING, "running"))
    kept.heard(KEY, JobReading("8", JobState.PENDING, "pending"))
    assert kept.of(KEY) == (
        JobReading("7", JobState.SUCCEEDED, "successful"),
        JobReading("8", JobState.PENDING, "pending"),
    )
    assert kept.of(InstanceKey("ns", "other")) == ()
    kept.forget(KEY)
    assert kept.of(KEY) == ()


def test_only_the_latest_jobs_of_an_instance_are_kept() -> None:
    kept = NotifiedReadings()
    for n in range(JOBS_KEPT + 2):
        kept.heard(KEY, JobReading(str(n), JobState.PENDING, "pending"))
    assert [r.job_id for r in kept.of(KEY)] == [str(n) for n in range(2, JOBS_KEPT + 2)]
