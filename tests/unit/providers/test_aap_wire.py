"""Unit tests of the AAP wire model: request building, response parsing, status mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from cloudkit.api.jobs import JobState
from cloudkit.providers.aap import wire
from cloudkit.providers.aap.client import backoff_delay
from cloudkit.providers.base import (
    CancelAnswer,
    ProviderInvalidResponse,
    ProviderNotAllowed,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnauthorized,
    ProviderUnavailable,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
JOB_TEMPLATE = wire.TemplateRef("provision", 7, wire.TemplateKind.JOB)
WORKFLOW_TEMPLATE = wire.TemplateRef("flow", 9, wire.TemplateKind.WORKFLOW)


def ok(body: Any, status: int = 200) -> wire.Response:
    return wire.Response(status, json.dumps(body).encode())


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    ["http://h/api", "http://h/api/", "https://h/api/controller", "https://h/api/controller/"],
)
def test_url_appends_version_and_keeps_trailing_slash(base: str) -> None:
    url = wire.job_request(wire.AapJobId(wire.JobKind.JOB, 12)).url(base)
    assert url == base.rstrip("/") + "/v2/jobs/12/"


def test_template_lookup_url_encodes_the_name() -> None:
    request = wire.template_lookup_request(wire.TemplateKind.WORKFLOW, "a b&c=d/é")
    url = request.url("http://h/api")
    parts = urlsplit(url)
    assert parts.path == "/api/v2/workflow_job_templates/"
    assert " " not in url and "&c=" not in url
    assert parse_qsl(parts.query) == [("name", "a b&c=d/é")]


def test_launch_request_by_numeric_id_with_eda_shaped_vars() -> None:
    instance = {"metadata": {"name": "vm1"}, "spec": {"cores": 2}}
    extra = wire.launch_extra_vars(instance, "corr-1")
    request = wire.launch_request(WORKFLOW_TEMPLATE, extra)
    assert request.method == "POST"
    assert request.path == "v2/workflow_job_templates/9/launch/"
    assert request.body == {
        "extra_vars": {
            "ansible_eda": {"event": {"payload": instance}},
            "cloudkit_correlation_id": "corr-1",
        }
    }


def test_cancel_request_uses_the_job_collection() -> None:
    workflow = wire.cancel_request(wire.AapJobId.parse("workflow-5"))
    assert workflow.path == "v2/workflow_jobs/5/cancel/"
    assert wire.cancel_request(wire.AapJobId.parse("5")).path == "v2/jobs/5/cancel/"


# --- job ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "number"),
    [("123", wire.JobKind.JOB, 123), ("workflow-4", wire.JobKind.WORKFLOW, 4)],
)
def test_job_id_round_trip(text: str, kind: wire.JobKind, number: int) -> None:
    parsed = wire.AapJobId.parse(text)
    assert (parsed.kind, parsed.number) == (kind, number)
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["", "eda-webhook-1", "workflow-", "12a", "-3", "workflow-x"])
def test_job_id_rejects_foreign_ids(text: str) -> None:
    with pytest.raises(ProviderNotAllowed):
        wire.AapJobId.parse(text)


# --- template lookup ----------------------------------------------------------------------------


def test_template_lookup_first_exact_match() -> None:
    request = wire.template_lookup_request(wire.TemplateKind.JOB, "prov")
    body = {"count": 2, "results": [{"id": 3, "name": "prov"}, {"id": 4, "name": "prov"}]}
    found = wire.parse_template_lookup(request, ok(body), wire.TemplateKind.JOB, "prov")
    assert found == wire.TemplateRef("prov", 3, wire.TemplateKind.JOB)


def test_template_lookup_empty_is_none() -> None:
    request = wire.template_lookup_request(wire.TemplateKind.JOB, "prov")
    body = {"count": 0, "results": []}
    assert wire.parse_template_lookup(request, ok(body), wire.TemplateKind.JOB, "prov") is None


@pytest.mark.parametrize(
    "body",
    [b"<html>gateway</html>", b"[]", b'{"count": 1}', b'{"results": [{"name": "p", "id": "3"}]}'],
)
def test_template_lookup_malformed(body: bytes) -> None:
    request = wire.template_lookup_request(wire.TemplateKind.JOB, "p")
    with pytest.raises(ProviderInvalidResponse):
        wire.parse_template_lookup(request, wire.Response(200, body), wire.TemplateKind.JOB, "p")


# --- launch -------------------------------------------------------------------------------------


def test_parse_launch_job_and_workflow() -> None:
    request = wire.launch_request(JOB_TEMPLATE, {})
    job = {"job": 11, "id": 11, "type": "job", "status": "pending", "ignored_fields": {}}
    assert str(wire.parse_launch(request, ok(job, 201))) == "11"
    # Slicing turns a job template launch into a workflow job.
    sliced = {"workflow_job": 12, "id": 12, "type": "workflow_job", "ignored_fields": {}}
    assert str(wire.parse_launch(request, ok(sliced, 201))) == "workflow-12"


def test_parse_launch_ignored_fields_is_an_error_naming_them() -> None:
    request = wire.launch_request(JOB_TEMPLATE, {})
    body = {"id": 11, "type": "job", "ignored_fields": {"extra_vars": {"a": 1}, "limit": "x"}}
    with pytest.raises(ProviderNotAllowed) as caught:
        wire.parse_launch(request, ok(body, 201))
    assert "extra_vars" in str(caught.value) and "limit" in str(caught.value)
    assert "11" in str(caught.value)


@pytest.mark.parametrize("body", [b"", b"not json", b"{}", b'{"id": true}', b'{"id": null}'])
def test_parse_launch_malformed(body: bytes) -> None:
    request = wire.launch_request(JOB_TEMPLATE, {})
    with pytest.raises(ProviderInvalidResponse):
        wire.parse_launch(request, wire.Response(201, body))


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("successful", JobState.SUCCEEDED),
        ("failed", JobState.FAILED),
        ("error", JobState.FAILED),
        ("canceled", JobState.CANCELED),
        ("pending", JobState.PENDING),
        ("waiting", JobState.WAITING),
        ("running", JobState.RUNNING),
        ("new", JobState.PENDING),
        ("never-heard-of-it", JobState.UNKNOWN),
    ],
)
def test_status_mapping(status: str, state: JobState) -> None:
    assert wire.job_state(status) is state


def test_parse_job_failed_carries_explanation_and_traceback() -> None:
    job_id = wire.AapJobId.parse("8")
    body = {
        "id": 8,
        "status": "error",
        "job_explanation": "Job terminated due to error",
        "result_traceback": "Traceback: boom",
    }
    reading = wire.parse_job(wire.job_request(job_id), ok(body), job_id)
    assert reading.job_id == "8"
    assert reading.state is JobState.FAILED
    assert reading.message == "error"
    assert "Job terminated due to error" in reading.details
    assert "Traceback: boom" in reading.details


def test_parse_job_success_has_no_details() -> None:
    job_id = wire.AapJobId.parse("workflow-8")
    body = {"id": 8, "status": "successful", "job_explanation": "noise"}
    reading = wire.parse_job(wire.job_request(job_id), ok(body), job_id)
    assert reading.job_id == "workflow-8"
    assert (reading.state, reading.details) == (JobState.SUCCEEDED, "")


@pytest.mark.parametrize("body", [b"{}", b'{"status": 3}', b'{"status": ""}', b"[1]", b"\xff"])
def test_parse_job_malformed(body: bytes) -> None:
    job_id = wire.AapJobId.parse("8")
    with pytest.raises(ProviderInvalidResponse):
        wire.parse_job(wire.job_request(job_id), wire.Response(200, body), job_id)


def test_purged_reading() -> None:
    reading = wire.purged_reading("8")
    assert reading.purged and reading.state is JobState.UNKNOWN
    assert reading.message == "job no longer exists in AAP (purged)"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ProviderNotAllowed),
        (401, ProviderUnauthorized),
        (403, ProviderNotAllowed),
        (404, ProviderNotFound),
        (405, ProviderNotAllowed),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (301, ProviderInvalidResponse),
    ],
)
def test_error_types(status: int, error_type: type[Exception]) -> None:
    request = wire.job_request(wire.AapJobId.parse("1"))
    error = wire.error_for(request, wire.Response(status, b'{"detail": "x"}'), now=NOW)
    assert isinstance(error, error_type)
    assert getattr(error, "status", None) == status


def test_success_is_no_error() -> None:
    request = wire.job_request(wire.AapJobId.parse("1"))
    assert wire.error_for(request, wire.Response(202), now=NOW) is None


def test_bad_request_keeps_the_field_map() -> None:
    request = wire.launch_request(JOB_TEMPLATE, {})
    body = b'{"extra_vars": ["Cannot parse as JSON"]}'
    error = wire.error_for(request, wire.Response(400, body), now=NOW)
    assert error is not None and "Cannot parse as JSON" in str(error)


def test_long_bodies_are_cut() -> None:
    request = wire.job_request(wire.AapJobId.parse("1"))
    error = wire.error_for(request, wire.Response(500, b"x" * 10_000), now=NOW)
    assert error is not None and len(str(error)) < 500


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (None, wire.DEFAULT_RETRY_AFTER),
        ("soon", wire.DEFAULT_RETRY_AFTER),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    request = wire.job_request(wire.AapJobId.parse("1"))
    headers = {"retry-after": header} if header is not None else {}
    error = wire.error_for(request, wire.Response(429, b"", headers), now=NOW)
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == pytest.approx(seconds)


def test_redact_removes_the_token() -> None:
    assert wire.redact("Bearer s3cret echoed", "s3cret") == "Bearer <redacted> echoed"
    assert wire.redact("nothing", "") == "nothing"


def test_error_messages_do_not_carry_headers() -> None:
    request = wire.job_request(wire.AapJobId.parse("1"))
    response = wire.Response(401, b"", {"www-authenticate": "Bearer realm=api"})
    error = wire.error_for(request, response, now=NOW)
    assert error is not None and "realm" not in str(error)


# --- cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(202, CancelAnswer.REQUESTED), (405, CancelAnswer.ALREADY_TERMINAL), (403, None)],
)
def test_cancel_outcome(status: int, outcome: CancelAnswer | None) -> None:
    assert wire.cancel_answer(wire.Response(status)) is outcome


# --- find ---------------------------------------------------------------------------------------


def test_find_request_filters_by_template_time_and_newest_first() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    query = dict(wire.find_jobs_request(JOB_TEMPLATE, since).query)
    assert query["job_template"] == "7"
    assert query["created__gte"] == "2026-01-02T03:03:05.000000Z"
    assert query["order_by"] == "-id"
    request = wire.find_jobs_request(WORKFLOW_TEMPLATE, since.replace(tzinfo=None), page=2)
    assert request.path == "v2/workflow_jobs/"
    assert dict(request.query)["workflow_job_template"] == "9"
    assert dict(request.query)["page"] == "2"


def test_find_request_converts_other_timezones_to_utc() -> None:
    since = datetime(2026, 1, 2, 5, 4, 5, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert dict(wire.find_jobs_request(JOB_TEMPLATE, since).query)["created__gte"].startswith(
        "2026-01-02T05:03:05"
    )


def _job(job_id: int, extra_vars: Any, status: str = "running") -> dict[str, Any]:
    return {"id": job_id, "status": status, "extra_vars": extra_vars}


def test_find_matches_the_correlation_id_in_the_extra_vars_string() -> None:
    request = wire.find_jobs_request(WORKFLOW_TEMPLATE, NOW)
    body = {
        "next": None,
        "results": [
            _job(5, json.dumps({"cloudkit_correlation_id": "other"})),
            _job(4, "not json"),
            _job(3, json.dumps(["list"])),
            _job(2, json.dumps({"cloudkit_correlation_id": "mine"}), "failed"),
        ],
    }
    found = wire.parse_find(request, ok(body), WORKFLOW_TEMPLATE, "mine")
    assert found.match is not None
    assert (found.match.job_id, found.match.state) == ("workflow-2", JobState.FAILED)


def test_find_no_match_says_whether_more_pages_exist() -> None:
    request = wire.find_jobs_request(JOB_TEMPLATE, NOW)
    body: dict[str, Any] = {
        "next": "/api/v2/jobs/?page=2",
        "results": [_job(5, {"cloudkit_correlation_id": "x"})],
    }
    found = wire.parse_find(request, ok(body), JOB_TEMPLATE, "mine")
    assert found == wire.FoundPage(None, has_next=True)
    body["next"] = None
    assert wire.parse_find(request, ok(body), JOB_TEMPLATE, "mine") == wire.FoundPage(None, False)


def test_find_malformed_list() -> None:
    request = wire.find_jobs_request(JOB_TEMPLATE, NOW)
    with pytest.raises(ProviderInvalidResponse):
        wire.parse_find(request, ok({"count": 3}), JOB_TEMPLATE, "mine")


# --- backoff ------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap_and_is_jittered() -> None:
    delays = [backoff_delay(n, base=0.5, cap=3.0, rand=0.999) for n in range(6)]
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(0.4995)
    assert max(delays) <= 3.0
    assert backoff_delay(4, base=0.5, cap=3.0, rand=0.0) == 0.0
