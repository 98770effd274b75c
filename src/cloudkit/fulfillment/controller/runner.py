"""`cloudkit fulfillment-controller`: follow the records, reconcile them while holding the Lease.

Records reach the work queue three ways: the private event stream (subscribed before each
re-list, so nothing committed in between is missed), a re-list with every new subscription (at
once after the service ended a stream, after `rewatch` when it broke; cloudkit.watching), and a
periodic re-list (`resync`): delivery is at most once, so the list is the truth and the stream
only makes it quick. A hub event re-lists too (a record that found no hub may have one now).

Two replicas never both act: the operator's election (`operator.leadership_loop`) decides on a
Lease; every replica follows and queues, only the leader runs the queue's workers. A leader that
loses the Lease stops its workers at once and the process exits 1 (as the operator does: a fresh
process stands again). SIGTERM lets the reconciles in flight finish and releases the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
from kubernetes_asyncio import client

from cloudkit.fulfillment.client import ApiError, FulfillmentClient, Object
from cloudkit.fulfillment.controller.decision import FINALIZER
from cloudkit.fulfillment.controller.hubs import HubKubeconfigs
from cloudkit.fulfillment.controller.options import ControllerOptions
from cloudkit.fulfillment.controller.reconcile import RecordReconciler
from cloudkit.operator.kube import load_configuration
from cloudkit.operator.leadership_loop import LeaderElector, LeaseClient
from cloudkit.operator.workqueue import Priority, WorkQueue
from cloudkit.watching import Backoff, Cursor, Follower, follow

log = logging.getLogger("cloudkit.fulfillment.controller")

REQUEST_TIMEOUT_S = 15.0
STREAM_LIFETIME_S = 60.0
SHUTDOWN_GRACE_S = 10.0
RELEASE_TIMEOUT_S = 5.0
ERROR_BACKOFF_MAX_S = 10.0
"""A failing record's longest wait before its next try (the work queue's default is 60 s). Its
failures are mostly a network that drops calls for a few seconds, and each event that re-adds
the record while it waits doubles the wait: under faults a deleted record waited 60 s after its
resource was gone. A reconcile is a handful of idempotent calls: trying every 10 s costs little."""
TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)
"""Failures of the service's API that the controller rides out (a restart, a network cut)."""


class LeadershipLost(Exception):
    """This replica stopped leading without being asked to: the process must exit non-zero."""


class Controller:
    def __init__(self, options: ControllerOptions) -> None:
        self.options = options
        path = options.token_file
        self.api = FulfillmentClient(
            options.address,
            lambda: path.read_text().strip(),  # re-read per call: projected tokens rotate
            ca_file=options.ca_file,
            private=True,
            timeout_s=REQUEST_TIMEOUT_S,
        )
        self.reconciler = RecordReconciler(self.api, HubKubeconfigs(options.hub_kubeconfigs))
        self.queue: WorkQueue[str] = WorkQueue(
            self.reconciler.reconcile,
            workers=options.workers,
            error_backoff_max=ERROR_BACKOFF_MAX_S,
        )
        self.stopping = asyncio.Event()
        self.lost = False
        self.leading = False
        self._lease_api: client.ApiClient | None = None
        self.elector: LeaderElector | None = None

    # -- feeding the queue ---------------------------------------------------------------------

    def enqueue(self, record: Object) -> None:
        record_id = record.get("id")
        if not isinstance(record_id, str):
            return
        deleting = bool((record.get("metadata") or {}).get("deletion_timestamp"))
        self.queue.add(record_id, priority=Priority.HIGH if deleting else Priority.NORMAL)

    async def relist(self) -> None:
        for record in await self.api.list_all():
            self.enqueue(record)

    async def follow(self) -> None:
        """The event stream, re-listed after each (re)subscription; forever (cloudkit.watching:
        a stream without versions, so each subscription is opened first, then listed)."""
        rewatch = self.options.rewatch.total_seconds()

        async def relist() -> None:
            await self.relist()

        async def on_event(event: Object) -> None:
            if isinstance(event.get("compute_instance"), dict):
                self.enqueue(event["compute_instance"])
            elif event.get("hub") is not None:
                await self.relist()

        events = Follower(
            relist=relist,
            watch=lambda _version: self._watch_a_while(),
            on_event=on_event,
            version_of=lambda _event: None,
            versioned=False,
        )
        cursor = Cursor("the event stream", transient=TRANSIENT, backoff=Backoff(rewatch, rewatch))
        await follow(events, cursor)

    @contextlib.asynccontextmanager
    async def _watch_a_while(self) -> AsyncIterator[AsyncIterator[Object]]:
        """The event stream, ended after STREAM_LIFETIME_S at the latest. A connection that
        died silently (a black hole) ends sooner, once the stream's heartbeat has been missing
        for the client's `stream_silence_s`."""
        async with self.api.watch() as events:
            yield _until(events, time.monotonic() + STREAM_LIFETIME_S)

    async def resync(self) -> None:
        period = self.options.resync.total_seconds()
        while True:
            await asyncio.sleep(period)
            try:
                await self.relist()
            except TRANSIENT as error:
                log.warning("re-list: %s", _said(error))

    # -- leading -------------------------------------------------------------------------------

    async def on_leadership(self, leading: bool) -> None:
        if leading:
            self.leading = True
            log.info("leading: reconciling records (finalizer %s)", FINALIZER)
            self.queue.start()
            return
        self.leading, self.lost = False, True
        await self.queue.stop()
        self.stopping.set()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.follow(), name="follow"),
            asyncio.create_task(self.resync(), name="resync"),
        ]
        election = self.options.election
        if election.enabled:
            configuration = await load_configuration(self.options.kubeconfig)
            self._lease_api = client.ApiClient(configuration=configuration)
            leases = LeaseClient(self._lease_api, election.namespace, election.lease_name)
            self.elector = LeaderElector(leases, election, on_change=self.on_leadership)
            tasks.append(asyncio.create_task(self.elector.run(), name="leader-election"))
        else:
            await self.on_leadership(True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            await self.stopping.wait()
        finally:
            await self.close(tasks)
        if self.lost:
            raise LeadershipLost("lost the leader Lease; exiting so a fresh process stands again")

    async def close(self, tasks: list[asyncio.Task[None]]) -> None:
        await self.queue.stop(grace=SHUTDOWN_GRACE_S)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=RELEASE_TIMEOUT_S)
        if self.elector is not None and self.leading:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RELEASE_TIMEOUT_S):
                    await self.elector.release()
        await self.reconciler.close()
        await self.api.close()
        if self._lease_api is not None:
            await self._lease_api.close()


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__


def run(options: ControllerOptions) -> int:
    """Run until SIGINT/SIGTERM (0) or a lost Lease (1)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    log.info("identity %s", options.election.identity)
    try:
        asyncio.run(Controller(options).run())
    except LeadershipLost as error:
        log.error("%s", error)
        return 1
    return 0


async def _until(events: AsyncIterator[Object], deadline: float) -> AsyncIterator[Object]:
    """`events` until the monotonic `deadline`."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                event = await anext(events)
        except (TimeoutError, StopAsyncIteration):
            return
        yield event
