"""The infrastructure errors a scenario met (a connection refused or reset, a deadline passed,
a 5xx or 429 from the API), retried apart from the product's failures, within a budget.

A scenario judges the product; an unsteady network between the scenario and the cluster is not
a verdict on it. Each call the scenario makes is retried on such an error, with jittered
exponential back-off, and counted; when the run has used up its budget of retries, the call
raises `RetryBudgetSpent`, and the runner says that the infrastructure, not the product,
stopped the run (exit code 3). A product failure (a validation that fails, a state never
reached) is exit code 1; neither is retried away.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from cloudkit.api.backoff import backoff_delay

log = logging.getLogger("cloudkit.scenarios")

T = TypeVar("T")

RETRY_BUDGET = 50
"""Retries a whole run may spend; far more than a seeded fault plan costs a healthy product."""
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.2, 3.0
UNAVAILABLE_STATUSES = frozenset({0, 429, 500, 502, 503, 504})
"""API answers a retry may cure (0: the client got no HTTP answer at all)."""
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,  # MaxRetryError, ProtocolError, ReadTimeoutError, …
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
EXIT_PASSED, EXIT_PRODUCT_FAILURE, EXIT_COULD_NOT_RUN, EXIT_RETRY_BUDGET_SPENT = 0, 1, 2, 3


class RetryBudgetSpent(Exception):
    """The run has retried infrastructure errors as often as its budget allows."""


def is_infrastructure_error(error: BaseException) -> bool:
    """A failure of the way to the cluster, not an answer of the cluster's: retry-worthy."""
    if isinstance(error, ApiException):
        return error.status in UNAVAILABLE_STATUSES
    return isinstance(error, TRANSPORT_ERRORS)


def describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason or ''}".strip()
    return f"{type(error).__name__}: {error}"[:200]


@dataclass
class InfrastructureErrors:
    """Errors seen and retried during one run (thread-safe: the recorder's watch thread counts
    its reconnections here too)."""

    budget: int = RETRY_BUDGET
    seen: int = 0
    retried: int = 0
    spent: bool = False
    examples: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def saw(self, what: str, error: BaseException) -> None:
        """Count one error; raise RetryBudgetSpent when no retry is left for it."""
        with self._lock:
            self.seen += 1
            if len(self.examples) < 5:
                self.examples.append(f"{what}: {describe(error)}")
            if self.retried >= self.budget:
                self.spent = True
                raise RetryBudgetSpent(
                    f"{what}: {describe(error)}; the retry budget ({self.budget}) is spent"
                ) from error
            self.retried += 1

    def call(self, what: str, operation: Callable[[], T], *, attempt_cap: int = 8) -> T:
        """`operation()`, retried on infrastructure errors while the budget lasts (at most
        `attempt_cap` times in a row, with back-off); any other error is raised as it is."""
        for attempt in range(attempt_cap):
            try:
                return operation()
            except Exception as error:
                if not is_infrastructure_error(error) or attempt + 1 >= attempt_cap:
                    raise
                self.saw(what, error)
                delay = backoff_delay(
                    attempt, base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S, rand=random.random()
                )
                log.warning("%s: %s; again in %.1fs", what, describe(error), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def to_json(self) -> dict[str, Any]:
        return {
            "errors_seen": self.seen,
            "retried": self.retried,
            "retry_budget": self.budget,
            "budget_spent": self.spent,
            "examples": list(self.examples),
        }
