"""Go-style duration strings ("30s", "1m30s", "500ms", "1.5h"): the format upstream's env uses.

Pure; the settings module turns a ValueError into an error naming the variable.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a non-negative Go duration; "0" alone is zero (as in Go). Raises ValueError.

    A sign is rejected: no setting of ours means anything with a negative duration.
    """
    value = text.strip()
    if value == "0":
        return timedelta(0)
    if not value:
        raise ValueError("empty duration")
    position = 0
    seconds = 0.0
    while position < len(value):
        match = _PART.match(value, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m30s, 500ms)")
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A short human form for logs: 500ms, 30s, 2m0s."""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s"
