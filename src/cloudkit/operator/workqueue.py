"""The per-key work queue that runs reconciles: deduplicated, delayed, bounded, one worker per key.

Semantics (client-go's workqueue, reshaped for asyncio):
- a key is queued at most once; adding it again keeps the earliest due time;
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
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

ERROR_BACKOFF_MIN = 0.5
ERROR_BACKOFF_MAX = 60.0
STOP_TIMEOUT = 10.0
"""How long stop() waits for canceled workers before giving up on them (and saying so)."""


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
        self._due: dict[K, float] = {}
        """Queued keys and their due time; heap entries that disagree are stale."""
        self._parked: dict[K, float] = {}
        """Keys added while being processed, with the earliest requested time."""
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._idle = asyncio.Event()
        """Set when a closed queue has no key in flight any more."""
        self._busy: set[str] = set()
        """Names of the workers running a reconcile now (the ones stop() may cancel)."""

    # --- adding -------------------------------------------------------------------------------

    def add(self, key: K, delay: float = 0.0) -> None:
        """Run `key` after `delay` seconds, unless it is already due earlier."""
        if self._closed:
            return
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        if key in self._processing:
            self._parked[key] = min(due, self._parked.get(key, due))
            return
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))
        self._wakeup.set()

    def forget(self, key: K) -> None:
        """Drop a queued (not running) key and its error history, e.g. once the object is gone."""
        self._due.pop(key, None)
        self._failures.pop(key, None)

    # --- introspection (tests, metrics) -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._due)

    def due_in(self, key: K) -> float | None:
        """Seconds until `key` is due (negative if overdue), None if not queued."""
        due = self._due.get(key, self._parked.get(key))
        return None if due is None else due - asyncio.get_running_loop().time()

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
            while self._heap:
                due, _, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # stale: re-added earlier, forgotten, or taken
                    continue
                wait = due - loop.time()
                if wait > 0:
                    break
                heapq.heappop(self._heap)
                del self._due[key]
                self._processing.add(key)
                return key
            timeout = self._heap[0][0] - loop.time() if self._heap else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
        return None

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
                self._readd_at(key, parked)
            if delay is not None:
                self.add(key, delay)

    def _readd_at(self, key: K, due: float) -> None:
        self.add(key, max(0.0, due - asyncio.get_running_loop().time()))
