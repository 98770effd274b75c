"""The operator's feedback, carried out: for each ComputeInstance labelled with a record's id, keep
the fulfillment record's status equal to the resource's (decided by `feedback.decide`).

Apart from provisioning by construction: it runs on a work queue and workers of its own, fed by
the same watch events as the reconciler's queue (the shell adds each key to both), and reads the
resource from the same watch cache. The lifecycle pass never waits for it, so a fulfillment API
that is down or slow costs a launch, a cancel or a deletion nothing; only the resource's own
feedback finalizer waits for the API (the final state must reach the record first). Every call
has a deadline (`FeedbackSettings.timeout`); a failed one is retried per instance with back-off
up to `retry_backoff_max`, for as long as it takes, so the record catches up when the API
returns; each instance is compared again every `resync_period` (someone else may have written
the record).

One pass over an instance:
1. no uuid label: nothing to feed back (a feedback finalizer left on it is dropped);
2. the finalizer `cloudkit.openshift.io/computeinstance-feedback` is added while the resource is
   live (a resourceVersion-guarded patch, as every finalizer write of this operator);
3. the record is read (private API); NotFound: the record is gone, the finalizer is dropped;
   the read is skipped when the record as the feedback last read or wrote it already calls
   for a write (Ready after Progressing: the tenant's RUNNING is one round trip, not two);
   that write is guarded by the version it was decided on, so a record changed since costs
   a Conflict and a fresh read, never a lost write; a pass that would write nothing still
   reads the record (someone else may have changed it);
4. `decide`, and the update is written only when something changed, guarded by the record's
   `metadata.version` (`lock`): a Conflict reads the record again and decides again;
5. once the feedback finalizer is the resource's last one (deleted, deprovisioned), the final
   state is written first (decided on the resource as read), then the finalizer is removed by
   a patch guarded by that very resourceVersion, then the record is signaled (a failed signal
   is logged: the service's resync cleans up). A resource that changed after the read the
   final state was decided on refuses the patch (Conflict): the pass reads it fresh and writes
   its newer state before trying again, so no second read is needed up front. Upstream
   removed the finalizer without ordering the last status write before it; here the tenant's
   last read of the record before it is archived shows the resource's final state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.fulfillment.client import ApiError, Conflict, FulfillmentClient, NotFound
from cloudkit.operator import kube as kube_errors
from cloudkit.operator.cache import Reads
from cloudkit.operator.feedback import FINALIZER, UPDATE_MASK, Resource, decide, held_by_controller
from cloudkit.operator.kube import Kube, KubeError
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.settings import FeedbackSettings

log = logging.getLogger("cloudkit.operator.feedback")

MAX_ROUNDS = 6
"""Re-reads after a conflict (the resource's or the record's) before the pass gives up."""
BACKOFF_MIN_S = 0.5
HELD_RECHECK_S = 10.0
"""How soon a record the controller holds FAILED is looked at again (it is taken back soon)."""


class FeedbackUnavailable(Exception):
    """The fulfillment API did not answer usefully; the message is for people (no token)."""


def token_reader(path: Path) -> Callable[[], str]:
    """The bearer token, read from `path` again before every request (a projected
    ServiceAccount token is rotated in place)."""

    def read() -> str:
        try:
            return path.read_text().strip()
        except OSError as error:
            raise FeedbackUnavailable(
                f"CLOUDKIT_FULFILLMENT_TOKEN_FILE {path}: cannot read: {error.strerror}"
            ) from None

    return read


def fulfillment_client(settings: FeedbackSettings) -> FulfillmentClient:
    return FulfillmentClient(
        settings.address,
        token_reader(settings.token_file),
        ca_file=settings.ca_bundle,
        private=True,
        timeout_s=settings.timeout.total_seconds(),
    )


@dataclass
class FeedbackSync:
    """The feedback queue's process function: `await sync(key)` → seconds until it wants to run
    again (None: on the instance's next change)."""

    kube: Kube
    reads: Reads
    api: FulfillmentClient
    settings: FeedbackSettings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _failures: dict[InstanceKey, int] = field(default_factory=dict, init=False)
    _known: dict[InstanceKey, dict[str, Any]] = field(default_factory=dict, init=False)
    """Each instance's record as the feedback last read or wrote it (step 3)."""
    _missing: dict[InstanceKey, str] = field(default_factory=dict, init=False)
    """Instances whose record was not found (→ that record's id): their finalizer is not added
    again until the record exists, or adding and dropping it would wake each other forever."""

    async def __call__(self, key: InstanceKey) -> float | None:
        try:
            delay = await self.sync(key)
        except (
            FeedbackUnavailable,
            ApiError,
            KubeError,
            aiohttp.ClientError,
            TimeoutError,
        ) as error:
            return self._failed(key, error)
        self._failures.pop(key, None)
        return delay

    async def close(self) -> None:
        await self.api.close()

    def _failed(self, key: InstanceKey, error: BaseException) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        ceiling = self.settings.retry_backoff_max.total_seconds()
        delay = min(ceiling, BACKOFF_MIN_S * 2.0**failures)
        log.warning("%s: feedback failed (%s); retrying in %.1fs", key, _describe(error), delay)
        return delay

    async def sync(self, key: InstanceKey) -> float | None:
        """One pass (module docstring); raises on what a retry may cure."""
        fresh = False
        for _ in range(MAX_ROUNDS):
            raw = await self.reads.instance(key, fresh=fresh)
            if raw is None:
                self._failures.pop(key, None)
                self._missing.pop(key, None)
                self._known.pop(key, None)
                return None
            resource = Resource.read(raw)
            try:
                return await self._round(key, raw, resource)
            except kube_errors.Conflict:
                log.info("%s: the resource changed; re-reading", key)
            fresh = True
        raise FeedbackUnavailable(f"gave up after {MAX_ROUNDS} conflicts")

    async def _round(
        self, key: InstanceKey, raw: dict[str, Any], resource: Resource
    ) -> float | None:
        record_id = resource.record_id
        finalizers = list(resource.metadata.finalizers)
        if record_id is None:
            if FINALIZER in finalizers:
                await self._set_finalizers(raw, [f for f in finalizers if f != FINALIZER])
            return None
        if not resource.deleting and FINALIZER not in finalizers:
            if self._missing.get(key) == record_id:
                try:
                    await self.api.get(record_id)
                except NotFound:
                    return None
                del self._missing[key]
            # Before the API is asked anything: a deletion must wait for the final state even
            # if the API is down right now.
            patched = await self._set_finalizers(raw, [*finalizers, FINALIZER])
            if patched is None:
                return None
            raw, resource = patched, Resource.read(patched)
            finalizers = list(resource.metadata.finalizers)
        try:
            record = await self._write(
                key, record_id, await self._record(key, record_id, resource), resource
            )
        except NotFound:
            log.info("%s: record %s not found; dropping the feedback finalizer", key, record_id)
            self._missing[key] = record_id
            self._known.pop(key, None)
            if FINALIZER in finalizers:
                await self._set_finalizers(raw, [f for f in finalizers if f != FINALIZER])
            return None
        if resource.released:
            await self._release(key, raw, record_id, resource)
            return None
        if not resource.deleting and held_by_controller(record):
            return HELD_RECHECK_S
        return self.settings.resync_period.total_seconds()

    async def _record(self, key: InstanceKey, record_id: str, resource: Resource) -> dict[str, Any]:
        """The record to decide on: the one known if it calls for a write, else read (step 3)."""
        known = self._known.get(key)
        calls_for_a_write = (
            known is not None
            and known.get("id") == record_id
            and decide(resource, known, self.clock()) is not None
        )
        if known is not None and calls_for_a_write:
            return known
        record = await self.api.get(record_id)
        self._known[key] = record
        return record

    async def _write(
        self, key: InstanceKey, record_id: str, record: dict[str, Any], resource: Resource
    ) -> dict[str, Any]:
        """Decide and write, re-reading the record after a version conflict; the record as it
        is now."""
        for _ in range(MAX_ROUNDS):
            update = decide(resource, record, self.clock())
            if update is None:
                return record
            version = (record.get("metadata") or {}).get("version")
            try:
                written = await self.api.update(
                    record_id, update.body(version), update_mask=list(UPDATE_MASK), lock=True
                )
            except Conflict:
                log.info("%s: record %s changed; re-reading it", key, record_id)
                record = await self.api.get(record_id)
                self._known[key] = record
                continue
            self._known[key] = written
            log.info(
                "%s: record %s: state %s",
                key,
                record_id,
                str(update.status.get("state", "-")).rsplit("_", 1)[-1],
            )
            return written
        raise FeedbackUnavailable(f"record {record_id}: gave up after {MAX_ROUNDS} conflicts")

    async def _release(
        self, key: InstanceKey, raw: dict[str, Any], record_id: str, resource: Resource
    ) -> None:
        finalizers = list(resource.metadata.finalizers)
        if FINALIZER in finalizers:
            await self._set_finalizers(raw, [f for f in finalizers if f != FINALIZER])
            log.info("%s: final state written to record %s; finalizer removed", key, record_id)
        self._known.pop(key, None)
        try:
            await self.api.signal(record_id)
        except (ApiError, aiohttp.ClientError, TimeoutError, FeedbackUnavailable) as error:
            # Not fatal: the service's controller re-lists and finds the resource gone.
            log.warning("%s: signaling record %s failed: %s", key, record_id, _describe(error))
        self._failures.pop(key, None)

    async def _set_finalizers(
        self, raw: dict[str, Any], finalizers: list[str]
    ) -> dict[str, Any] | None:
        patched = await self.kube.set_finalizers(raw, finalizers)
        if patched is not None:
            self.reads.wrote(patched)
        return patched


def _describe(error: BaseException) -> str:
    """One line for people; never the token (no error built here carries it)."""
    if isinstance(error, ApiError):
        return f"HTTP {error.status}: {error.message}"
    if isinstance(error, TimeoutError):
        return "no answer within the timeout"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def wait_closed(sync: FeedbackSync) -> None:
    """Close the API client, bounded (a closing connection must not hold the shutdown)."""
    try:
        async with asyncio.timeout(5):
            await sync.close()
    except TimeoutError:
        log.warning("closing the fulfillment client timed out")
