"""EDA webhook wire format and bookkeeping, without I/O: bodies, job ids, answers, rate limit.

EDA's webhook answers with no handle on the AAP job its rulebook starts, so the "job id" is
ours: `eda-webhook-<n>`, numbered per instance from its status.jobs history so that every
webhook sent for one instance is a distinct entry.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cloudkit.api.jobs import EDA_JOB_ID_PREFIX
from cloudkit.api.names import AUTOMATION_FINALIZER
from cloudkit.providers.base import (
    ProviderError,
    ProviderNotAllowed,
    ProviderRateLimited,
    ProviderUnavailable,
)

JOB_ID_PREFIX = EDA_JOB_ID_PREFIX
_JOB_ID = re.compile(re.escape(JOB_ID_PREFIX) + r"([0-9]+)")
_JOB_ID_KEYS = ("jobID", "jobId", "job_id")
"""Upstream writes `jobID`; the other spellings are accepted from hand-made or older dicts."""

DEFAULT_RETRY_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    """May hold the webhook token (Authorization), hence kept out of repr."""


def webhook_request(
    url: str, instance: Mapping[str, Any], *, token: str | None = None
) -> WebhookRequest:
    """POST the whole resource as JSON; the rulebook hands it to the playbook as the payload.

    A token goes in `Authorization: Bearer`, the header the EDA webhook source checks; it is
    never added to the URL (URLs reach logs, proxies and error messages)."""
    body = json.dumps(instance, default=str, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return WebhookRequest(url, body, headers)


def safe_url(url: str) -> str:
    """The URL without query, fragment or user info, for messages (they may carry secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def error_for_status(
    url: str, status: int, body: bytes, *, retry_after: str | None = None
) -> ProviderError | None:
    """None for 2xx (EDA's success); otherwise the typed error for that status."""
    if 200 <= status < 300:
        return None
    text = body.decode("utf-8", errors="replace").strip()[:200]
    message = f"EDA webhook {safe_url(url)} answered {status}" + (f": {text}" if text else "")
    if status == 429:
        try:
            delay = max(0.0, float(retry_after)) if retry_after else DEFAULT_RETRY_AFTER
        except ValueError:
            delay = DEFAULT_RETRY_AFTER
        return ProviderRateLimited(message, retry_after=delay, status=status)
    if status >= 500:
        return ProviderUnavailable(message, status=status)
    return ProviderNotAllowed(message, status=status)


def next_job_id(instance: Mapping[str, Any]) -> str:
    """`eda-webhook-<n>` with n one above the highest such id in status.jobs[] (1 if none)."""
    status = instance.get("status")
    jobs = status.get("jobs") if isinstance(status, Mapping) else None
    highest = 0
    for job in jobs if isinstance(jobs, list) else []:
        if not isinstance(job, Mapping):
            continue
        for key in _JOB_ID_KEYS:
            value = job.get(key)
            match = _JOB_ID.fullmatch(value) if isinstance(value, str) else None
            if match:
                highest = max(highest, int(match.group(1)))
    return f"{JOB_ID_PREFIX}{highest + 1}"


def has_automation_finalizer(instance: Mapping[str, Any]) -> bool:
    """The provisioning playbook sets it; without it there is nothing to deprovision."""
    metadata = instance.get("metadata")
    finalizers = metadata.get("finalizers") if isinstance(metadata, Mapping) else None
    return isinstance(finalizers, list) and AUTOMATION_FINALIZER in finalizers


def rate_limit_key(url: str, instance: Mapping[str, Any]) -> str:
    """ "<url>:<namespace>/<name>": per webhook and instance (upstream keyed on the name only)."""
    metadata = instance.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    return f"{url}:{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class RateLimiter:
    """Minimum interval between successful webhook POSTs per key; in memory, lost on restart.

    `remaining` returns the time left until the next POST may go out. Upstream returns the time
    *elapsed* since the last POST, so its requeues come back at growing gaps; we return what
    the caller should actually wait.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def remaining(self, key: str) -> float:
        """Seconds until `key` may send again; 0 when it may send now."""
        if self._interval <= 0:
            return 0.0
        last = self._last.get(key)
        if last is None:
            return 0.0
        left = self._interval - (self._clock() - last)
        if left <= 0:
            del self._last[key]  # keeps the table from growing with every instance ever seen
            return 0.0
        return left

    def record(self, key: str) -> None:
        """Remember a successful POST (failed POSTs do not count, as upstream)."""
        if self._interval > 0:
            self._last[key] = self._clock()
