"""Infrastructure errors apart from product failures: what counts as one, the retry budget,
and the exit code a report earns."""

from __future__ import annotations

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from cloudkit.scenarios.cli import exit_code
from cloudkit.scenarios.infrastructure import (
    EXIT_PASSED,
    EXIT_PRODUCT_FAILURE,
    EXIT_RETRY_BUDGET_SPENT,
    InfrastructureErrors,
    RetryBudgetSpent,
    is_infrastructure_error,
)
from cloudkit.scenarios.validations import Report


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104)),
        urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out."),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "refused"),
        ApiException(status=503, reason="Service Unavailable"),
        ApiException(status=429, reason="Too Many Requests"),
        ApiException(status=0, reason="no answer"),
    ],
)
def test_the_way_to_the_cluster_failing_is_infrastructure(error: Exception) -> None:
    assert is_infrastructure_error(error)


@pytest.mark.parametrize(
    "error",
    [
        ApiException(status=404, reason="Not Found"),
        ApiException(status=409, reason="Conflict"),
        ApiException(status=422, reason="Invalid"),
        ValueError("a wrong answer"),
    ],
)
def test_an_answer_of_the_cluster_is_not(error: Exception) -> None:
    assert not is_infrastructure_error(error)


def _failing(times: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "answer"

    return calls, operation


def test_a_call_is_retried_through_infrastructure_errors_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)  # the back-off's waits, not its count
    errors = InfrastructureErrors(budget=10)
    calls, operation = _failing(2, ConnectionResetError(104, "reset"))
    assert errors.call("reading", operation) == "answer"  # type: ignore[arg-type]
    assert (len(calls), errors.seen, errors.retried, errors.spent) == (3, 2, 2, False)
    assert errors.to_json()["examples"][0].startswith("reading: ConnectionResetError")


def test_a_product_answer_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    errors = InfrastructureErrors()
    calls, operation = _failing(1, ApiException(status=422, reason="Invalid"))
    with pytest.raises(ApiException):
        errors.call("creating", operation)  # type: ignore[arg-type]
    assert (len(calls), errors.seen) == (1, 0)


def test_a_spent_budget_stops_the_run_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    errors = InfrastructureErrors(budget=2)
    _, operation = _failing(100, ConnectionRefusedError(111, "refused"))
    with pytest.raises(RetryBudgetSpent, match="retry budget"):
        errors.call("reading", operation)  # type: ignore[arg-type]
    assert (errors.seen, errors.retried, errors.spent) == (3, 2, True)


def test_the_exit_code_tells_a_product_failure_from_a_spent_budget() -> None:
    report = Report("lifecycle", "aap", "ns/x")
    report.add("resource-gone", True, "")
    assert exit_code(report) == EXIT_PASSED
    report.infrastructure = InfrastructureErrors(seen=4, retried=4).to_json()
    assert exit_code(report) == EXIT_PASSED, "retried errors alone do not fail a run"
    report.add("no-orphan-virtual-machine", False, "left behind: vm")
    assert exit_code(report) == EXIT_PRODUCT_FAILURE
    report.infrastructure["budget_spent"] = True
    assert exit_code(report) == EXIT_RETRY_BUDGET_SPENT
    assert report.to_json()["infrastructure"]["retried"] == 4
