"""A stack process's pauses: its garbage collector's settings, and a log of its long pauses.

Every child of the stack starts through `procs.cloudkit_command`, whose bootstrap calls
`settle()` after the imports and before `main()`. A sustained run's tails are made of the
moments a process cannot answer: a gen-2 collection walks every live object (tens to hundreds
of milliseconds once a server holds a million), most of them data that lives on (modules,
caches, the API server's change log) and is walked each time for nothing. `settle()` freezes
what each full collection leaves (`gc.freeze()`, see `_freeze_survivors`).

With CLOUDKIT_PAUSE_LOG=<directory> set (a benchmark's diagnosis, off otherwise), the process
also appends to <directory>/<name>-<pid>.jsonl one line per event-loop callback that ran longer
than PAUSE_MS (what ran, its wall and CPU time: a wall far above the CPU is a process waiting
for a core, not working) and one per collection longer than PAUSE_MS (generation, duration).
The stdlib offers the callback timing only in asyncio's debug mode, which slows every call it
makes; wrapping `Handle._run` costs two clock reads per callback and is installed only here. It
sees asyncio's own loop only: a process on uvloop (the API server) logs its collections alone.
"""

from __future__ import annotations

import asyncio.events
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

PAUSE_LOG_ENV = "CLOUDKIT_PAUSE_LOG"
COLLECTOR_ENV = "CLOUDKIT_GC"
"""`default` keeps CPython's collector settings (to measure against); anything else settles."""
PAUSE_MS = 10.0


def settle() -> None:
    """Freeze what each full collection leaves (unless CLOUDKIT_GC=default); log long pauses
    if CLOUDKIT_PAUSE_LOG names a directory. The thresholds keep CPython's defaults: a young
    generation ten times larger (10,000) made each gen-1 collection walk ~100,000 objects, 30-60
    ms of CPU in the API server, worse than the pauses it spared."""
    if os.environ.get(COLLECTOR_ENV) != "default":
        gc.callbacks.append(_freeze_survivors)
    directory = os.environ.get(PAUSE_LOG_ENV)
    if directory:
        # A child's bootstrap names it `cloudkit <subcommand>`; a script by its file.
        child = sys.argv[0] == "cloudkit" and len(sys.argv) > 1
        record_pauses(Path(directory), sys.argv[1] if child else Path(sys.argv[0]).stem)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """After a full collection, move what survived it out of the collector's sight.

    A full collection walks every live object: the API server's change log (10,000 parsed
    objects) and the operator's caches make it 30-260 ms of CPU, growing with the heap, and a
    pass or a watch event that waits behind it lands in the tails. What survives a full
    collection is, overwhelmingly, data that refcounting frees (a frozen object is freed as
    any other when its last reference goes); the next full collection then walks only what
    was promoted since. What it gives up: a reference cycle among objects that had survived a
    full collection is never reclaimed (long-lived connections' and tasks' cycles, a few KB
    each when they end), so the stack's processes trade a slow leak for short pauses
    (measured: docs/benchmarks/scale.md)."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


class _PauseLog:
    """Appends one JSON line per long callback or collection."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._gc_began = (0.0, 0.0)
        self.gc_in_callback_ms = 0.0

    def write(self, entry: dict[str, Any]) -> None:
        entry["at"] = round(time.time(), 4)
        self._out.write(json.dumps(entry) + "\n")
        self._out.flush()

    def on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = (time.perf_counter(), time.thread_time())
            return
        took_ms = (time.perf_counter() - self._gc_began[0]) * 1000
        self.gc_in_callback_ms += took_ms
        if took_ms > PAUSE_MS:
            self.write(
                {
                    "kind": "gc",
                    "generation": info["generation"],
                    "ms": round(took_ms, 1),
                    "cpu_ms": round((time.thread_time() - self._gc_began[1]) * 1000, 1),
                    "collected": info["collected"],
                }
            )


def _what(handle: asyncio.events.Handle) -> str:
    """The coroutine a task's step ran (a Handle's repr names only the task's method)."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro: Any = owner.get_coro()
        name = getattr(coro, "__qualname__", str(coro))
        # Where it is suspended now, innermost first: next to what the step did.
        while getattr(coro, "cr_await", None) is not None and hasattr(coro.cr_await, "cr_frame"):
            coro = coro.cr_await
        frame = getattr(coro, "cr_frame", None)
        where = f" at {frame.f_code.co_qualname}:{frame.f_lineno}" if frame else ""
        return f"task {name}{where}"
    return repr(handle)[:300]


def record_pauses(directory: Path, name: str) -> None:
    """Log this process's long callbacks and collections to directory/<name>-<pid>.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    pauses = _PauseLog((directory / f"{name}-{os.getpid()}.jsonl").open("a"))
    gc.callbacks.append(pauses.on_collection)
    run = asyncio.events.Handle._run

    def timed_run(handle: asyncio.events.Handle) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        pauses.gc_in_callback_ms = 0.0
        run(handle)
        wall_ms = (time.perf_counter() - wall) * 1000
        if wall_ms > PAUSE_MS:
            pauses.write(
                {
                    "kind": "callback",
                    "what": _what(handle),
                    "ms": round(wall_ms, 1),
                    "cpu_ms": round((time.thread_time() - cpu) * 1000, 1),
                    "gc_ms": round(pauses.gc_in_callback_ms, 1),
                }
            )

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
