"""Leader election's decisions on a `coordination.k8s.io/v1` Lease: pure, no I/O, no clocks.

The rules are client-go's leaderelection (the ones controller-runtime runs):
- An observer never compares its clock with `renewTime`, which another host wrote: it times a
  record from when it last *saw it change* on its own monotonic clock. A holder is alive while
  the record keeps changing; it is presumed gone `leaseDurationSeconds` after the last change
  this replica saw.
- A missing Lease is created with us as holder; an empty `holderIdentity` (a released Lease)
  may be taken at once; another holder's record is waited on until it expires.
- Every write carries the resourceVersion it was computed from: a Conflict means someone else
  won this round.
- `leaseTransitions` grows by one when the holder changes; the holder's own renewals keep it
  and `acquireTime`.
- Release (on a clean stop) writes an empty holder and `leaseDurationSeconds: 1`, as
  client-go's ReleaseOnCancel does, so a standby takes over without waiting for expiry.
- A leader that has not renewed within the renew deadline has lost: it stops acting before the
  lease (longer than the deadline) can expire for the others.

The I/O loop that applies these decisions is leadership_loop.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

LEASE_DURATION_S = 15.0
RENEW_DEADLINE_S = 10.0
RETRY_PERIOD_S = 2.0
"""controller-runtime's defaults."""

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The spec of a Lease, as the election reads and writes it."""

    holder: str = ""
    lease_duration_s: int = int(LEASE_DURATION_S)
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_s=duration if isinstance(duration, int) and duration > 0 else 1,
            acquire_time=_text(spec.get("acquireTime")),
            renew_time=_text(spec.get("renewTime")),
            transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_s,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def micro_time(now: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Move(StrEnum):
    CREATE = "create"
    """No Lease yet: create it, holding it."""
    ACQUIRE = "acquire"
    """Released or expired: write ourselves as holder (a transition)."""
    RENEW = "renew"
    """We hold it: write a fresh renewTime."""
    WAIT = "wait"
    """Someone else holds a lease that has not expired on our clock."""


@dataclass(frozen=True, slots=True)
class ElectionStep:
    """What to do with the Lease this round (one round of the election), and what to write."""

    move: Move
    record: LeaseRecord | None
    """What to write (None for WAIT)."""


@dataclass(frozen=True, slots=True)
class Observed:
    """A Lease record as this replica saw it, and when (our monotonic clock) it last changed."""

    record: LeaseRecord
    changed_at: float


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    """Keep the time of the last change: an unchanged record keeps its (older) timestamp."""
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


def expired(observed: Observed, now: float) -> bool:
    """Past the holder's lease duration since we last saw its record change."""
    return observed.changed_at + observed.record.lease_duration_s <= now


def next_step(
    observed: Observed | None,
    *,
    identity: str,
    now: float,
    wall: datetime,
    lease_duration_s: float = LEASE_DURATION_S,
) -> ElectionStep:
    """What to do with the Lease this round; `observed` None means there is no Lease."""
    stamp = micro_time(wall)
    duration = max(1, round(lease_duration_s))
    if observed is None:
        return ElectionStep(Move.CREATE, LeaseRecord(identity, duration, stamp, stamp, 0))
    current = observed.record
    if current.holder == identity:
        renewed = replace(current, lease_duration_s=duration, renew_time=stamp)
        return ElectionStep(Move.RENEW, renewed)
    if current.holder and not expired(observed, now):
        return ElectionStep(Move.WAIT, None)
    taken = LeaseRecord(identity, duration, stamp, stamp, current.transitions + 1)
    return ElectionStep(Move.ACQUIRE, taken)


def released(record: LeaseRecord, wall: datetime) -> LeaseRecord:
    """The record a leader writes when it steps down cleanly (client-go's ReleaseOnCancel)."""
    stamp = micro_time(wall)
    return replace(record, holder="", lease_duration_s=1, renew_time=stamp, acquire_time=stamp)


def lost(last_renewed: float, now: float, renew_deadline_s: float = RENEW_DEADLINE_S) -> bool:
    """A leader that has not renewed within the renew deadline must stop acting."""
    return now - last_renewed >= renew_deadline_s


def validate_timings(lease_s: float, renew_deadline_s: float, retry_s: float) -> list[str]:
    """client-go's own checks: lease > renew deadline > retry period × 1.2 (its jitter)."""
    problems = []
    if lease_s <= renew_deadline_s:
        problems.append("the lease duration must be longer than the renew deadline")
    if renew_deadline_s <= retry_s * 1.2:
        problems.append("the renew deadline must be longer than 1.2 × the retry period")
    return problems


def default_identity(environ: Mapping[str, str]) -> str:
    """The pod's name in a cluster (POD_NAME from the downward API, else HOSTNAME, which is
    the pod name), else `<host>_<pid>` so two processes on one machine never share one."""
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    for name in ("POD_NAME", "HOSTNAME") if in_cluster else ("POD_NAME",):
        value = (environ.get(name) or "").strip()
        if value:
            return value
    return f"{socket.gethostname()}_{os.getpid()}"


def default_namespace(namespace_file: Path = IN_CLUSTER_NAMESPACE_FILE) -> str:
    """The pod's own namespace in a cluster, else deploy/operator's."""
    try:
        found = namespace_file.read_text().strip()
    except OSError:
        found = ""
    return found or "cloudkit-operator-system"
