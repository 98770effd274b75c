"""A log of event-loop stalls, for finding what makes a watch delivery's tail.

Put this directory first on PYTHONPATH and set CLOUDKIT_LOOP_STALLS to a directory: every
Python process started so (the stack's children inherit both) appends to DIR/PID.jsonl one
line per asyncio callback that held its loop longer than CLOUDKIT_LOOP_STALL_MS (10 ms) and
one per garbage collection longer than a tenth of that, with wall and thread-CPU time:
CPU close to wall means the process itself held the loop (our code, a GC pass), CPU far
below it means the process waited (for a core on a busy machine, or for the disk).

    CLOUDKIT_LOOP_STALLS=/tmp/stalls PYTHONPATH=benchmarks/loop_stalls \\
        .venv/bin/python benchmarks/scale.py --sizes 300 --sustained-seconds 60
    .venv/bin/python benchmarks/loop_stalls/summary.py /tmp/stalls

Only for measuring: it wraps asyncio's Handle._run (~1 us per callback; uvloop's callbacks
are not seen so) and runs a 5 ms heartbeat on every loop started through asyncio.Runner,
logged when it fires more than the threshold late ("heartbeat late": the loop was held).
"""

from __future__ import annotations

import os

_DIR = os.environ.get("CLOUDKIT_LOOP_STALLS")

if _DIR:
    import asyncio.events
    import asyncio.runners
    import gc
    import json
    import sys
    import time
    from typing import Any

    _THRESHOLD_S = float(os.environ.get("CLOUDKIT_LOOP_STALL_MS", "10")) / 1000
    _GC_THRESHOLD_S = _THRESHOLD_S / 10
    _log = open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), "a", buffering=1)  # noqa: SIM115
    _log.write(json.dumps({"argv": sys.argv[1:4]}) + "\n")

    def _what(callback: Any) -> str:
        owner = getattr(callback, "__self__", None)
        get_coro = getattr(owner, "get_coro", None)
        if get_coro is not None:  # a task's step: name its coroutine
            coro = get_coro()
            return f"task {getattr(coro, '__qualname__', repr(coro))}"
        return getattr(callback, "__qualname__", repr(callback))

    _run = asyncio.events.Handle._run

    def _timed_run(self: asyncio.events.Handle) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        _run(self)
        took = time.perf_counter() - wall
        if took > _THRESHOLD_S:
            line = {"at": time.time(), "wall_ms": round(took * 1000, 2),
                    "cpu_ms": round((time.thread_time() - cpu) * 1000, 2),
                    "what": _what(getattr(self, "_callback", None))}  # fmt: skip
            _log.write(json.dumps(line) + "\n")

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    _gc_start: list[float] = [0.0, 0.0]

    def _gc_timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_start[:] = [time.perf_counter(), time.thread_time()]
            return
        took = time.perf_counter() - _gc_start[0]
        if took > _GC_THRESHOLD_S:
            line = {"at": time.time(), "wall_ms": round(took * 1000, 2),
                    "cpu_ms": round((time.thread_time() - _gc_start[1]) * 1000, 2),
                    "what": f"gc generation {info.get('generation')}",
                    "collected": info.get("collected")}  # fmt: skip
            _log.write(json.dumps(line) + "\n")

    gc.callbacks.append(_gc_timer)

    # uvloop runs its callbacks without asyncio's Handle: a heartbeat every 5 ms sees any
    # loop's stalls (how late it fires), if not their cause. Installed by asyncio.Runner,
    # which asyncio.run and the API server's run() both go through.
    _BEAT_S = 0.005

    def _beat(loop: asyncio.AbstractEventLoop, due: float, cpu: float) -> None:
        now, cpu_now = loop.time(), time.thread_time()
        late = now - due
        if late > _THRESHOLD_S:
            line = {"at": time.time(), "wall_ms": round(late * 1000, 2),
                    "cpu_ms": round((cpu_now - cpu) * 1000, 2),
                    "what": "heartbeat late"}  # fmt: skip
            _log.write(json.dumps(line) + "\n")
        loop.call_at(now + _BEAT_S, _beat, loop, now + _BEAT_S, cpu_now)

    _runner_run = asyncio.runners.Runner.run

    def _run_with_heartbeat(self: Any, coro: Any, *, context: Any = None) -> Any:
        async def beating() -> Any:
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + _BEAT_S, _beat, loop, loop.time() + _BEAT_S,
                         time.thread_time())  # fmt: skip
            return await coro

        return _runner_run(self, beating(), context=context)

    asyncio.runners.Runner.run = _run_with_heartbeat  # type: ignore[method-assign]
