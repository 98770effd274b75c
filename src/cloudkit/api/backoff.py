"""The one back-off every client's bounded retry waits by (AAP, the fulfillment API, scenarios)."""

from __future__ import annotations


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Full-jitter exponential backoff: a uniform wait in [0, min(cap, base·2^attempt)).

    Jitter spreads the retries of many clients of one server that just came back.
    `rand` is a number in [0, 1) so the function stays pure.
    """
    return rand * min(cap, base * 2.0**attempt)
