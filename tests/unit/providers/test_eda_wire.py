"""Unit tests of the EDA webhook pure parts: bodies, job ids, answers and the rate limiter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudkit.api.names import AUTOMATION_FINALIZER
from cloudkit.providers.base import (
    ProviderNotAllowed,
    ProviderRateLimited,
    ProviderUnavailable,
)
from cloudkit.providers.eda import wire


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def instance(jobs: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    metadata = {"name": "vm1", "namespace": "ns1", **meta}
    return {"metadata": metadata, "spec": {}, "status": {"jobs": jobs or []}}


def test_webhook_request_posts_the_whole_resource_as_json() -> None:
    body = instance()
    request = wire.webhook_request("http://eda:5000/create", body)
    assert request.url == "http://eda:5000/create"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == body
    assert "Authorization" not in request.headers  # upstream's webhooks have no auth


def test_webhook_token_goes_in_a_header_never_the_url() -> None:
    request = wire.webhook_request("http://eda:5000/create", instance(), token="hook-secret-1")
    assert request.url == "http://eda:5000/create"
    assert request.headers["Authorization"] == "Bearer hook-secret-1"
    assert "hook-secret-1" not in repr(request)


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([], "eda-webhook-1"),
        ([{"jobID": "eda-webhook-1"}, {"jobID": "eda-webhook-3"}], "eda-webhook-4"),
        ([{"jobID": "eda-webhook"}, {"jobID": "17"}, {"jobID": "eda-webhook-x"}], "eda-webhook-1"),
        ([{"job_id": "eda-webhook-2"}, {"jobId": "eda-webhook-5"}], "eda-webhook-6"),
        (["junk", {"jobID": None}], "eda-webhook-1"),
    ],
)
def test_next_job_id(jobs: list[Any], expected: str) -> None:
    assert wire.next_job_id(instance(jobs)) == expected


def test_next_job_id_without_status() -> None:
    assert wire.next_job_id({"metadata": {"name": "x"}}) == "eda-webhook-1"


def test_automation_finalizer() -> None:
    assert wire.has_automation_finalizer(instance(finalizers=[AUTOMATION_FINALIZER]))
    assert not wire.has_automation_finalizer(instance(finalizers=["other"]))
    assert not wire.has_automation_finalizer({})


def test_rate_limit_key_names_url_namespace_and_name() -> None:
    assert wire.rate_limit_key("http://e/c", instance()) == "http://e/c:ns1/vm1"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, ProviderNotAllowed), (404, ProviderNotAllowed), (500, ProviderUnavailable)],
)
def test_error_for_status(status: int, error_type: type[Exception]) -> None:
    assert isinstance(wire.error_for_status("http://e/c", status, b"no"), error_type)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success(status: int) -> None:
    assert wire.error_for_status("http://e/c", status, b"") is None


def test_429_carries_retry_after() -> None:
    error = wire.error_for_status("http://e/c", 429, b"", retry_after="4")
    assert isinstance(error, ProviderRateLimited) and error.retry_after == 4.0
    error = wire.error_for_status("http://e/c", 429, b"", retry_after="later")
    assert isinstance(error, ProviderRateLimited) and error.retry_after == wire.DEFAULT_RETRY_AFTER


def test_messages_drop_query_and_user_info_from_urls() -> None:
    error = wire.error_for_status("http://u:pw@e:5000/c?token=abc", 500, b"")
    assert error is not None
    assert "pw" not in str(error) and "abc" not in str(error)
    assert "http://e:5000/c" in str(error)


def test_rate_limiter_returns_the_remaining_time() -> None:
    clock = FakeClock()
    limiter = wire.RateLimiter(10.0, clock=clock)
    assert limiter.remaining("k") == 0.0
    limiter.record("k")
    clock.now += 3.0
    assert limiter.remaining("k") == pytest.approx(7.0)
    clock.now += 4.0
    assert limiter.remaining("k") == pytest.approx(3.0)  # shrinks, unlike upstream's elapsed
    assert limiter.remaining("other") == 0.0
    clock.now += 3.0
    assert limiter.remaining("k") == 0.0


def test_rate_limiter_off_by_default_interval() -> None:
    limiter = wire.RateLimiter(0.0, clock=FakeClock())
    limiter.record("k")
    assert limiter.remaining("k") == 0.0
