"""Child processes of the local stack: spawn, stream logs with a prefix, supervise, stop.

Every child runs in its own session (process group), so a Ctrl-C in the terminal reaches only
the stack, which then stops the children in order: SIGTERM to the child, a grace period, then
SIGKILL to its whole group. On Linux a child also gets SIGTERM if the stack itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cloudkit.local.private import PRIVATE_UMASK, open_private_log, private_dir
from cloudkit.local.process_groups import signal_group

log = logging.getLogger("cloudkit.local.stack")

LogSink = Callable[[str, str], None]
"""Receives (child name, one output line)."""

START_TIMEOUT_S = 60.0
"""How long a child may take to say it is ready."""
STOP_GRACE_S = 8.0
TAIL_LINES = 30


def cloudkit_command(*args: str) -> list[str]:
    """`cloudkit <args>` run by this interpreter (works without the console script on PATH)."""
    bootstrap = "import sys; sys.argv[0] = 'cloudkit'; from cloudkit.cli import main; main()"
    return [sys.executable, "-c", bootstrap, *args]


def _die_with_parent() -> None:
    """preexec_fn: a new session, and SIGTERM when the stack process dies (Linux prctl)."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process; its output goes to DIR/logs/<name>.log and to `sink`."""

    name: str
    process: asyncio.subprocess.Process
    log_file: TextIO
    sink: LogSink | None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lines: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    _reader: asyncio.Task[None] | None = None
    stopping: bool = False
    collecting: bool = True
    """Lines are queued for `wait_for_line` only during start-up."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read(), name=f"log-{self.name}")

    async def _read(self) -> None:
        stream = self.process.stdout
        if stream is None:
            return
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            self.log_file.write(line + "\n")
            self.log_file.flush()
            if self.collecting:
                self.lines.put_nowait(line)
            if self.sink is not None:
                self.sink(self.name, line)

    async def wait_for_line(self, predicate: Callable[[str], bool], timeout_s: float) -> str:
        """The first output line matching `predicate`; fails if the child exits first."""
        async with asyncio.timeout(timeout_s):
            while True:
                getter = asyncio.ensure_future(self.lines.get())
                exited = asyncio.ensure_future(self.process.wait())
                done, _ = await asyncio.wait({getter, exited}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    exited.cancel()
                    line = getter.result()
                    if predicate(line):
                        self.collecting = False
                        return line
                    continue
                getter.cancel()
                raise ChildFailed(self.describe_exit())

    def describe_exit(self) -> str:
        code = self.process.returncode
        last = "\n".join(list(self.tail)[-10:])
        return f"{self.name} exited with code {code}" + (f"; last output:\n{last}" if last else "")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the whole process group."""
        self.stopping = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs; killing it", self.name, grace_s)
        # Whatever is left in its group (e.g. a playbook it started) goes too.
        signal_group(self.pid, signal.SIGKILL, leader_reaped=self.process.returncode is not None)
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 2.0)
        self.log_file.close()


class ChildFailed(RuntimeError):
    """A child exited while it was expected to run (the message says which and why)."""


def _open_log(log_dir: Path, name: str) -> TextIO:
    return open_private_log(private_dir(log_dir) / f"{name}.log")


async def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    sink: LogSink | None,
    cwd: Path | None = None,
) -> Child:
    log_file = _open_log(log_dir, name)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=str(cwd) if cwd else None,
        preexec_fn=_die_with_parent,
        # Whatever a child or its tools write on their own (SQLite, ansible-runner) is
        # private too, whatever the user's umask.
        umask=PRIVATE_UMASK,
    )
    child = Child(name=name, process=process, log_file=log_file, sink=sink)
    child.start_reading()
    return child


async def wait_for_port(host: str, port: int, child: Child, timeout_s: float) -> None:
    """Until `host:port` accepts a TCP connection; fails if `child` exits first."""
    async with asyncio.timeout(timeout_s):
        while True:
            if child.process.returncode is not None:
                raise ChildFailed(child.describe_exit())
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
