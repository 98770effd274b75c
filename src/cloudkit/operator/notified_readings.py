"""The job readings that authenticated job notifications brought, kept per instance until a
pass takes them (reconcile.py puts them in the core's `Observation.notified`).

Why keep them rather than only wake the instance: an AWX notification's body is the job as the
controller recorded it (id, status, explanation), which is what a poll right after it would
read; taking it as the reading saves that poll, a request on both sides per state change. Only
notifications that passed the receiver's bearer token are kept (notifications.py): an
unauthenticated one could claim any state. Per job the reading furthest along is kept, so
notifications delivered out of order (each is its own request) never hide a later state; the
core takes one only where it moves the recorded job forward (`jobs.moves_forward`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudkit.api.jobs import JobReading
from cloudkit.lifecycle import jobs
from cloudkit.operator.kube_objects import InstanceKey

JOBS_KEPT = 4
"""Readings kept per instance (its current provision and deprovision jobs, and a retry or
two); an older job's reading is of no use to a pass (the core matches the current job's id)."""


@dataclass
class NotifiedReadings:
    _readings: dict[InstanceKey, dict[str, JobReading]] = field(default_factory=dict)

    def heard(self, key: InstanceKey, reading: JobReading) -> None:
        """Keep `reading` for `key` unless a reading of the same job further along is kept."""
        kept = self._readings.setdefault(key, {})
        known = kept.get(reading.job_id)
        if known is not None and not jobs.further_along(reading.state, known.state):
            return
        kept.pop(reading.job_id, None)  # re-inserted last: the dict's order is arrival
        kept[reading.job_id] = reading
        while len(kept) > JOBS_KEPT:
            del kept[next(iter(kept))]

    def of(self, key: InstanceKey) -> tuple[JobReading, ...]:
        kept = self._readings.get(key)
        return tuple(kept.values()) if kept else ()

    def forget(self, key: InstanceKey) -> None:
        self._readings.pop(key, None)
