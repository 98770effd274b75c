"""The per-key work queue that runs reconciles: deduplicated, delayed, bounded, one worker per key.

Semantics (client-go's workqueue, reshaped for asyncio):
- a key is queued at most once; adding it again keeps the earliest due time and the highest
  priority;
- among the keys that are due, a higher priority lane goes first, and the earliest due first
  within a lane (controller-runtime's priority queue: the initial list of a burst goes LOW, so
  a deletion or a running instance's change is not stuck behind a thousand creates); a key
  that is not due yet waits whatever its lane, and a lower lane still runs whenever no higher
  key is due, so nothing starves while the higher lanes are idle;
- a key being processed is never handed to a second worker: adds during processing are parked
  and the key is queued again (at the earliest parked time) when its worker finishes;
- at most `workers` keys are processed at once;
- the process function returns the delay until the key wants to run again (None = only when
  something else adds it); an exception requeues the key with per-key exponential backoff.
Time is the event loop's monotonic clock, so tests can use short real delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Hashable
from enum import IntEnum
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

ERROR_BACKOFF_MIN = 0.5
ERROR_BACKOFF_MAX = 60.0
LOW_TURN = 4
"""While LOW keys are due, at most LOW_TURN - 1 takes in a row go to the higher lanes.

Strict lanes made a new instance (LOW) wait until every due HIGH and NORMAL key had run: after
any stretch in which the operator fell behind (its own or the API server's pause, a core taken
by another process), the deletions and requeues that piled up ran first and the instances
created meanwhile launched ~1.2 s late, in bunches, while the deletions of the same moment did
not wait (docs/benchmarks/scale.md, "The sustained run's tails"). One turn in four keeps most
of the workers on work in flight during a burst of creates and bounds a new instance's wait
to a few passes."""
STOP_TIMEOUT = 10.0
"""How long stop() waits for canceled workers before giving up on them (and saying so)."""


class Priority(IntEnum):
    """The lane of a queued key; among due keys a higher lane runs first."""

    LOW = 0
    """Instances not yet taken in hand (a burst of creates, the initial list)."""
    NORMAL = 1
    """Everything in flight: job notifications, VM changes, requeues."""
    HIGH = 2
    """Deletions: cleanup is not held back by provisioning."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        process: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 8,
        error_backoff_min: float = ERROR_BACKOFF_MIN,
        error_backoff_max: float = ERROR_BACKOFF_MAX,
    ) -> None:
        self._process = process
        self._workers = max(1, workers)
        self._backoff_min = error_backoff_min
        self._backoff_max = error_backoff_max
        self._heap: list[tuple[float, int, K]] = []
        """Queued keys by due time, not yet moved to their lane."""
        self._lanes: dict[Priority, list[tuple[float, int, K]]] = {p: [] for p in Priority}
        """Due keys by lane, earliest due first."""
        self._due: dict[K, float] = {}
        """Queued keys and their due time."""
        self._entry: dict[K, tuple[int, Priority]] = {}
        """Queued keys' current entry (sequence number, lane); other entries are stale."""
        self._parked: dict[K, tuple[float, Priority]] = {}
        """Keys added while being processed, with the earliest time and highest lane asked."""
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._seq = 0
        self._passed_over = 0
        """Takes from a higher lane in a row while a LOW key was due."""
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._idle = asyncio.Event()
        """Set when a closed queue has no key in flight any more."""
        self._busy: set[str] = set()
        """Names of the workers running a reconcile now (the ones stop() may cancel)."""

    # --- adding -------------------------------------------------------------------------------

    def add(self, key: K, delay: float = 0.0, *, priority: Priority = Priority.NORMAL) -> None:
        """Run `key` after `delay` seconds in lane `priority`, unless it is already due earlier
        (the earliest time and the highest lane asked for win, separately)."""
        if self._closed:
            return
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        if key in self._processing:
            parked_due, parked_lane = self._parked.get(key, (due, priority))
            self._parked[key] = (min(due, parked_due), max(priority, parked_lane))
            return
        current = self._due.get(key)
        if current is not None:
            lane = self._entry[key][1]
            if current <= due and lane >= priority:
                return
            due, priority = min(due, current), max(priority, lane)
        self._due[key] = due
        self._seq += 1
        self._entry[key] = (self._seq, priority)
        heapq.heappush(self._heap, (due, self._seq, key))
        self._wakeup.set()

    def forget(self, key: K) -> None:
        """Drop a queued (not running) key and its error history, e.g. once the object is gone."""
        self._due.pop(key, None)
        self._entry.pop(key, None)
        self._failures.pop(key, None)

    # --- introspection (tests, metrics) -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._due)

    def due_in(self, key: K) -> float | None:
        """Seconds until `key` is due (negative if overdue), None if not queued."""
        parked = self._parked.get(key)
        due = self._due.get(key, parked[0] if parked is not None else None)
        return None if due is None else due - asyncio.get_running_loop().time()

    def priority_of(self, key: K) -> Priority | None:
        """The lane of a queued (or parked) key, None if not queued."""
        entry = self._entry.get(key)
        if entry is not None:
            return entry[1]
        parked = self._parked.get(key)
        return None if parked is None else parked[1]

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-worker-{n}")
            for n in range(self._workers)
        ]

    async def stop(self, *, grace: float = 0.0) -> None:
        """Stop taking keys; in-flight reconciles may finish within `grace` seconds, then are
        canceled (they are level-based: the next start re-reads everything). Idle workers end
        by themselves: a cancellation that lands as a worker wakes up cannot be lost (Python
        3.11's wait_for can swallow one), so stopping never hangs on an idle worker."""
        self._closed = True
        self._wakeup.set()
        if grace > 0 and self._processing and self._tasks:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        for task in self._tasks:
            if not task.done() and task.get_name() in self._busy:
                task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in stuck:
                log.warning("%s did not stop within %.0fs", task.get_name(), STOP_TIMEOUT)
        self._tasks = []

    async def _next(self) -> K | None:
        """The next due key; None once the queue is stopping (the worker then ends)."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            self._move_due_to_lanes(loop.time())
            key = self._take_from_lanes()
            if key is not None:
                self._processing.add(key)
                return key
            timeout = self._heap[0][0] - loop.time() if self._heap else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
        return None

    def _current(self, seq: int, key: K) -> bool:
        entry = self._entry.get(key)
        return entry is not None and entry[0] == seq

    def _move_due_to_lanes(self, now: float) -> None:
        """Every key due by `now` goes to its lane; stale entries (re-added with an earlier
        time or a higher lane, forgotten, or taken) are dropped on the way."""
        while self._heap:
            due, seq, key = self._heap[0]
            if not self._current(seq, key):
                heapq.heappop(self._heap)
                continue
            if due > now:
                return
            heapq.heappop(self._heap)
            heapq.heappush(self._lanes[self._entry[key][1]], (due, seq, key))

    def _take_from_lanes(self) -> K | None:
        """The earliest due key of the highest non-empty lane, removed from the queue; LOW's
        turn instead once the higher lanes have had LOW_TURN - 1 takes in a row past it."""
        low = self._pop_current(Priority.LOW) if self._passed_over >= LOW_TURN - 1 else None
        if low is not None:
            self._passed_over = 0
            return low
        for priority in sorted(Priority, reverse=True):
            key = self._pop_current(priority)
            if key is not None:
                low_waits = priority is not Priority.LOW and self._has_current(Priority.LOW)
                self._passed_over = self._passed_over + 1 if low_waits else 0
                return key
        return None

    def _pop_current(self, priority: Priority) -> K | None:
        """The earliest due current key of a lane, removed from the queue (stale entries go)."""
        lane = self._lanes[priority]
        while lane:
            _, seq, key = heapq.heappop(lane)
            if self._current(seq, key):
                del self._due[key]
                del self._entry[key]
                return key
        return None

    def _has_current(self, priority: Priority) -> bool:
        """Whether a lane holds a current key (stale entries at its head go)."""
        lane = self._lanes[priority]
        while lane and not self._current(lane[0][1], lane[0][2]):
            heapq.heappop(lane)
        return bool(lane)

    async def _work(self) -> None:
        name = asyncio.current_task().get_name()  # type: ignore[union-attr]
        while (key := await self._next()) is not None:
            # Another worker may be waiting on an earlier-due key that is now free to run.
            self._wakeup.set()
            delay: float | None
            self._busy.add(name)
            try:
                delay = await self._process(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                self._processing.discard(key)
                raise
            except Exception:
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                delay = min(self._backoff_max, self._backoff_min * 2.0**failures)
                log.exception("reconcile of %s failed; retrying in %.1fs", key, delay)
            finally:
                self._busy.discard(name)
            self._processing.discard(key)
            if self._closed and not self._processing:
                self._idle.set()
            parked = self._parked.pop(key, None)
            if parked is not None:
                self._readd_at(key, *parked)
            if delay is not None:
                self.add(key, delay)

    def _readd_at(self, key: K, due: float, priority: Priority) -> None:
        self.add(key, max(0.0, due - asyncio.get_running_loop().time()), priority=priority)
