"""The election's I/O: the Lease read and written over kubernetes_asyncio, on a schedule and
within deadlines. What to write, and when a leader has lost, is decided in leadership.py.

A standby tries every retry period, and at once when a watch on the Lease shows it changed (a
released Lease is taken without waiting out a period). Only a watch *event* ends the wait
early: an attempt or a watch that fails (an API server that is down, or no `watch` on leases)
waits out the period, as client-go does, so a refused standby asks once per period, and says
why once per outage rather than every round. A leader renews every retry period;
each attempt may take no longer than what is left of the renew deadline, so an API server that
stops answering cannot hold the leader past the deadline: `lost` is set then, before the
lease can expire for anyone else (the deadline is shorter than the lease). Nor longer than a
third of the deadline (RENEW_ATTEMPTS). A renewal that has not succeeded does not wait for its
attempt to end before trying again: every `retry period / HEDGES` another attempt starts beside
the ones still hanging (at most MAX_IN_FLIGHT, each on its own connection), until one succeeds
or the deadline passes. A request lost in a black hole (a connection that will never answer)
thus costs a fraction of a second, not the attempt's whole timeout: back-to-back faults with
gaps of a second between them (as `cloudkit up --faults SEED --fault-span 12` plays them) no
longer cost the Lease. The elector has its own ApiClient: renewals never queue behind the
reconciles' requests.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.operator.kube import Conflict, KubeError
from cloudkit.operator.leadership import (
    LeaseRecord,
    Move,
    Observed,
    lost,
    next_step,
    observe,
    released,
)
from cloudkit.operator.settings import LeaderElectionSettings

log = logging.getLogger("cloudkit.operator.leadership")

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"
WATCH_TIMEOUT_S = 60
RENEW_ATTEMPTS = 3
"""Renewal attempts that fit in the renew deadline, at the least: each gets this share of it."""
HEDGES = 4
"""A renewal not yet through starts another attempt every retry period / HEDGES."""
MAX_IN_FLIGHT = 8
"""Renewal attempts at once, at most (each holds a connection until it ends). With the default
timings (an attempt lasts at most 3.3 s, one starts every 0.5 s) seven at most are ever in
flight: a cap here stopped new attempts in the ~1 s gaps between dense faults."""
UNANSWERED = (KubeError, TimeoutError, OSError, aiohttp.ClientError)
"""An attempt the API server did not answer: a refusal, a reset (aiohttp's
ServerDisconnectedError is no OSError), a deadline, an error status."""


class LeaseClient:
    """get / create / update of one Lease, as plain dicts; writes carry the resourceVersion."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name

    async def read(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"reading Lease {self.namespace}/{self.name}", error) from None
        return found

    async def create(self, record: LeaseRecord) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        return await self._write("creating", body, create=True)

    async def update(self, current: dict[str, Any], record: LeaseRecord) -> dict[str, Any]:
        """Replace the spec; the metadata (with its resourceVersion) is the one read."""
        body = {**current, "spec": record.to_spec()}
        return await self._write("updating", body, create=False)

    async def _write(self, verb: str, body: dict[str, Any], *, create: bool) -> dict[str, Any]:
        what = f"{verb} Lease {self.namespace}/{self.name}"
        try:
            if create:
                written: dict[str, Any] = await self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, body
                )
            else:
                written = await self._custom.replace_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, self.name, body
                )
        except ApiException as error:
            if error.status == 409:  # changed since read, or created by another replica
                raise Conflict(what, error) from None
            raise KubeError(what, error) from None
        return written

    async def changes(self, resource_version: str | None) -> bool:
        """True when the Lease changes after `resource_version` (None: when one appears); False
        when the server ends the watch without a change. Errors propagate."""
        options: dict[str, Any] = {"field_selector": f"metadata.name={self.name}"}
        if resource_version:
            options["resource_version"] = resource_version
        async with watch.Watch() as watcher:
            events = watcher.stream(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                timeout_seconds=WATCH_TIMEOUT_S,
                **options,
            )
            async for event in events:
                if str(event.get("type", "")).upper() != "BOOKMARK":
                    return True
        return False


class Outage:
    """What went wrong with the API server, said once per outage: the first failure as a
    warning, the repeats at debug level, and the first success after them as the end."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._failures = 0

    def failed(self, error: BaseException) -> None:
        self._failures += 1
        reason = str(error) or f"no answer in time ({type(error).__name__})"
        if self._failures == 1:
            log.warning("leader election: %s: %s (retrying every period)", self._what, reason)
        else:
            log.debug("leader election: %s: %s (failure %d)", self._what, reason, self._failures)

    def answered(self) -> None:
        if self._failures:
            log.info(
                "leader election: %s works again after %d failed tries", self._what, self._failures
            )
        self._failures = 0


class LeaderElector:
    """Runs the election; `leading` is set once this replica holds the Lease, `lost` once it
    has failed to renew within the renew deadline (or seen another holder). One term per
    elector: a replica that lost does not stand again (the process exits; see shell.py)."""

    def __init__(
        self,
        leases: LeaseClient,
        settings: LeaderElectionSettings,
        *,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._leases = leases
        self._settings = settings
        self._on_change = on_change
        self._observed: Observed | None = None
        self._current: dict[str, Any] | None = None
        """The Lease as last read or written (its resourceVersion guards the next write)."""
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self.observed = asyncio.Event()
        """Set once the Lease was read (or created): the API server answers this replica."""

    @property
    def identity(self) -> str:
        return self._settings.identity

    @property
    def holder(self) -> str | None:
        return self._observed.record.holder if self._observed is not None else None

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set() and not self.lost.is_set()

    async def run(self) -> None:
        """Stand until leading, then renew until lost (or canceled)."""
        await self._stand()
        self.leading.set()
        log.info(
            "leading: %s holds Lease %s/%s",
            self.identity,
            self._leases.namespace,
            self._leases.name,
        )
        if self._on_change is not None:
            await self._on_change(True)
        await self._renew()
        self.lost.set()
        if self._on_change is not None:
            await self._on_change(False)

    async def _stand(self) -> None:
        retry = self._settings.retry_period.total_seconds()
        deadline = self._settings.renew_deadline.total_seconds()
        attempts, watches = Outage("reading the Lease"), Outage("watching the Lease")
        waiting_on: str | None = None
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation.
                async with asyncio.timeout(deadline):
                    if await self._attempt():
                        attempts.answered()
                        return
            except UNANSWERED as error:
                attempts.failed(error)
                await asyncio.sleep(retry)  # refused: no watch, the whole period
                continue
            attempts.answered()
            if self.holder and self.holder != waiting_on:
                waiting_on = self.holder
                log.info("standby: %s leads; %s waits", waiting_on, self.identity)
            await self._pause(retry, watches)

    async def _pause(self, seconds: float, watches: Outage) -> None:
        """Until the retry period has passed, or sooner when a watch shows the Lease changed.
        A watch that ends without a change does not end the pause; one that fails starts the
        period again, so no two requests of a refused standby are closer than a period."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        version = ((self._current or {}).get("metadata") or {}).get("resourceVersion")
        changed = False
        try:
            async with asyncio.timeout_at(until) as period:
                changed = await self._leases.changes(version)
        except TimeoutError:
            if not period.expired():
                watches.failed(TimeoutError())
                until = loop.time() + seconds
        # Whatever the watch raises (HTTP, TLS, a malformed event): logged once, then retried
        # after a period; the election itself must not stop for it.
        except Exception as error:
            watches.failed(error)
            until = loop.time() + seconds
        else:
            watches.answered()
        if not changed:
            await asyncio.sleep(max(0.0, until - loop.time()))

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        retry = self._settings.retry_period.total_seconds()
        deadline = self._settings.renew_deadline.total_seconds()
        renewed = loop.time()
        renewals = Outage("renewing the Lease")
        while True:
            await asyncio.sleep(retry)
            sent = await self._renewal(renewed + deadline, renewals)
            if sent is not None:
                # Others time the new record from when they see it: never before `sent`.
                renewed = sent
                renewals.answered()
            if self.holder not in (None, self.identity):
                log.error("lost leadership: %s holds the Lease now", self.holder)
                return
            if lost(renewed, loop.time(), deadline):
                log.error("lost leadership: the Lease was not renewed within %.0fs", deadline)
                return

    async def _renewal(self, until: float, renewals: Outage) -> float | None:
        """Attempts until one renews (the time it was sent), another holder shows, or `until`
        (None). One starts at once and another every retry period / HEDGES while none has
        succeeded, beside those still waiting for an answer; each ends by its own timeout."""
        loop = asyncio.get_running_loop()
        spacing = self._settings.retry_period.total_seconds() / HEDGES
        longest = self._settings.renew_deadline.total_seconds() / RENEW_ATTEMPTS
        in_flight: dict[asyncio.Task[bool], float] = {}
        next_start = loop.time()
        try:
            while (now := loop.time()) < until:
                if now >= next_start and len(in_flight) < MAX_IN_FLIGHT:
                    attempt = self._bounded_attempt(min(until, now + longest))
                    in_flight[asyncio.create_task(attempt)] = now
                    next_start = now + spacing
                wake = until if len(in_flight) >= MAX_IN_FLIGHT else min(next_start, until)
                timeout = max(0.0, wake - loop.time())
                if not in_flight:  # the last one failed fast: the next one waits its turn
                    await asyncio.sleep(timeout)
                    continue
                done, _ = await asyncio.wait(
                    in_flight, timeout=timeout, return_when=FIRST_COMPLETED
                )
                for task in done:
                    sent = in_flight.pop(task)
                    try:
                        if task.result():
                            return sent
                    except UNANSWERED as error:
                        renewals.failed(error)
                if self.holder not in (None, self.identity):
                    return None
            return None
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _bounded_attempt(self, until: float) -> bool:
        async with asyncio.timeout_at(until):
            return await self._attempt()

    async def _attempt(self) -> bool:
        """One round of read → decide → write; True when we hold the Lease after it."""
        loop = asyncio.get_running_loop()
        current = await self._leases.read()
        now = loop.time()
        if current is not None:
            record = LeaseRecord.from_spec(current.get("spec"))
            self._observed = observe(self._observed, record, now)
            self._current = current
        self.observed.set()
        step = next_step(
            self._observed if current is not None else None,
            identity=self.identity,
            now=now,
            wall=datetime.now(UTC),
            lease_duration_s=self._settings.lease_duration.total_seconds(),
        )
        if step.move is Move.WAIT or step.record is None:
            return False
        try:
            if current is None:
                written = await self._leases.create(step.record)
            else:
                written = await self._leases.update(current, step.record)
        except Conflict:
            return False  # someone else wrote first; the next round reads who
        if step.move is Move.ACQUIRE:
            log.info("acquired the Lease (transition %d)", step.record.transitions)
        self._current = written
        self._observed = observe(self._observed, step.record, now)
        return True

    async def release(self) -> bool:
        """Step down cleanly: an empty holder, so a standby takes over at once. Only a leader
        that has not lost releases; a Conflict means the Lease is someone else's already."""
        if not self.is_leader:
            return False
        try:
            current = await self._leases.read()
            record = LeaseRecord.from_spec((current or {}).get("spec"))
            if current is None or record.holder != self.identity:
                return False
            await self._leases.update(current, released(record, datetime.now(UTC)))
        except (KubeError, OSError) as error:
            log.warning("releasing the Lease failed (it will expire instead): %s", error)
            return False
        log.info("released the Lease")
        return True
