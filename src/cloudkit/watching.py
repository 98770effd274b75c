"""Following a Kubernetes collection, written once: list, watch from the list's resourceVersion,
resume after the server ends a watch, reconnect with back-off, and list again on 410.

client-go's reflector in small. The caller owns the client: it lists (handing every object
over, returning the list's resourceVersion) and opens watches; `Cursor` decides what comes next:
- a watch the server ends (its timeout) resumes at once from the last version seen, so nothing
  in between is lost; a watch that ends at once without an event counts as a failure (a server
  that closes every stream must not be asked again in a tight loop);
- a failure (no connection, a broken stream, a refusal, a handler that raised) waits a back-off
  (doubling up to a ceiling; reset by a successful list or event), then resumes from the last
  version seen, which replays what was missed; the event whose handler raised is delivered again;
- 410 Gone (the version was compacted away, or the server lost it) lists again at once: a list
  is the only way back to a consistent view;
- a stream without versions (`None` from the list: the fulfillment event stream) lists again
  after every reconnection, and is opened *before* the list so no commit falls in between.
The version moves on only after the event's handler returned. Failures are logged once per
outage (then at debug level), and the recovery once.

Two runners of the one cursor: `follow` for asyncio code, `follow_blocking` for a thread with a
blocking client (the `kubernetes` package). Whatever the client, 410 is an error whose `status`
is 410 (`ApiException` of both kubernetes packages, the local stack's `WatchExpired`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger("cloudkit.watching")

E = TypeVar("E")

GONE = 410
SHORTEST_WATCH_S = 1.0
"""A watch that ends sooner than this without delivering an event is a failure (client-go's
"very short watch")."""


def is_gone(error: BaseException) -> bool:
    """The server no longer has the version asked for (410 Gone / Expired), in any client."""
    return getattr(error, "status", None) == GONE


@dataclass
class Backoff:
    """Pauses after failures: `first`, doubling up to `ceiling`; `reset` after a success."""

    first: float = 0.2
    ceiling: float = 5.0
    _next: float | None = field(default=None, init=False)

    def pause(self) -> float:
        current = self.first if self._next is None else self._next
        self._next = min(current * 2, self.ceiling)
        return current

    def reset(self) -> None:
        self._next = None


@dataclass
class Cursor:
    """Where a follow stands (the version to resume from; whether to list first) and what it
    does after a watch ended or failed."""

    what: str
    """The collection, for log lines."""
    transient: tuple[type[BaseException], ...]
    """Failures to ride out; anything else ends the follow (a bug should not loop)."""
    version: str | None = None
    """The version to resume from; None: list first (at the start, after a 410, or always for
    a stream without versions)."""
    backoff: Backoff = field(default_factory=Backoff)
    lists: int = 0
    """Lists made so far (what a test of the 410 path counts)."""
    on_failure: Callable[[BaseException], None] | None = None
    """Told of every failure ridden out (not a 410): a caller that counts them (scenario
    reports count infrastructure errors apart from product failures)."""
    _failing: bool = False

    @property
    def must_list(self) -> bool:
        return self.version is None

    def listed(self, version: str | None) -> None:
        self.lists += 1
        self.version = version or None
        self._recovered()

    def saw(self, version: str | None) -> None:
        """An event was handled: resume after it from now on."""
        if version:
            self.version = version
        self._recovered()

    def ended(self, started: float, events: int, now: float) -> float:
        """The server ended the watch: the pause before the next (0: resume at once)."""
        if events == 0 and now - started < SHORTEST_WATCH_S:
            return self._failed(f"the watch ended after {now - started:.1f}s without an event")
        return 0.0

    def broke(self, error: BaseException) -> float:
        """The watch or list failed with `error`: the pause before trying again (0 after a 410:
        list again at once). Raises `error` when it is not one to ride out."""
        if is_gone(error):
            log.info(
                "watch of %s: resourceVersion %s expired; listing again", self.what, self.version
            )
            self.version = None
            return 0.0
        if not isinstance(error, self.transient):
            raise error
        if self.on_failure is not None:
            self.on_failure(error)
        return self._failed(str(error) or type(error).__name__)

    def _failed(self, why: str) -> float:
        pause = self.backoff.pause()
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "watch of %s: %s; again in %.1fs", self.what, why, pause)
        self._failing = True
        return pause

    def _recovered(self) -> None:
        if self._failing:
            log.info("watch of %s works again", self.what)
        self._failing = False
        self.backoff.reset()


@dataclass
class Follower(Generic[E]):
    """What a follow does with its (asyncio) client: list, open a watch, handle an event."""

    relist: Callable[[], Awaitable[str | None]]
    """List the collection and hand every object over; the list's resourceVersion."""
    watch: Callable[[str | None], AbstractAsyncContextManager[AsyncIterator[E]]]
    """Open a watch resuming after a version (None: from now)."""
    on_event: Callable[[E], Awaitable[None]]
    version_of: Callable[[E], str | None]
    """The resourceVersion an event moves the follow to (bookmarks included); None: none."""
    versioned: bool = True
    """False for a stream without versions: it is opened first, then listed, every time."""


async def follow(
    follower: Follower[E], cursor: Cursor, *, synced: Callable[[], None] | None = None
) -> None:
    """Follow until cancelled (or a failure the cursor does not ride out); `synced()` after
    each list."""
    while True:
        try:
            pause = await _watch_once(follower, cursor, synced)
        except Exception as error:  # classified by the cursor: ridden out, or raised again
            pause = cursor.broke(error)
        if pause:
            await asyncio.sleep(pause)


async def _watch_once(
    follower: Follower[E], cursor: Cursor, synced: Callable[[], None] | None
) -> float:
    """One watch to its end, listing first where needed; the pause before the next."""
    if follower.versioned and cursor.must_list:
        await _list(follower, cursor, synced)
    async with follower.watch(cursor.version) as events:
        if not follower.versioned:
            # Subscribed first, then listed: nothing committed in between is missed.
            await _list(follower, cursor, synced)
        started, count = time.monotonic(), 0
        async for event in events:
            await follower.on_event(event)
            count += 1
            cursor.saw(follower.version_of(event))
    return cursor.ended(started, count, time.monotonic())


async def _list(follower: Follower[E], cursor: Cursor, synced: Callable[[], None] | None) -> None:
    cursor.listed(await follower.relist())
    if synced is not None:
        synced()


@dataclass
class BlockingFollower(Generic[E]):
    """`Follower` for a blocking client, run in a thread of its own."""

    relist: Callable[[], str | None]
    watch: Callable[[str | None], Iterator[E]]
    on_event: Callable[[E], None]
    version_of: Callable[[E], str | None]


def follow_blocking(follower: BlockingFollower[E], cursor: Cursor, stop: threading.Event) -> None:
    """Follow until `stop` is set (checked after every event and during every pause)."""
    while not stop.is_set():
        try:
            pause = _watch_once_blocking(follower, cursor, stop)
        except Exception as error:  # classified by the cursor: ridden out, or raised again
            pause = cursor.broke(error)
        if pause:
            stop.wait(pause)


def _watch_once_blocking(
    follower: BlockingFollower[E], cursor: Cursor, stop: threading.Event
) -> float:
    if cursor.must_list:
        cursor.listed(follower.relist())
    events = follower.watch(cursor.version)
    try:
        started, count = time.monotonic(), 0
        for event in events:
            follower.on_event(event)
            count += 1
            cursor.saw(follower.version_of(event))
            if stop.is_set():
                return 0.0
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # the connection goes now, not when the generator is collected
    return cursor.ended(started, count, time.monotonic())
