"""Process control for playbook runs: spawn, stream output, cancel with escalation, reap.

The only module in the service that sends signals. Each run gets its own session (process
group), so a cancel reaches ansible-playbook and its forked workers and module processes alike:
SIGINT first (what AWX's cancel amounts to, reference §4), then SIGTERM, then SIGKILL, within
GRACE_S in total. ansible-runner's own cancel path goes straight to SIGKILL, which is why the
service spawns the command that ansible-runner prepared instead of calling `Runner.run`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence

from cloudkit.local.process_groups import signal_group

log = logging.getLogger(__name__)

SIGINT_WAIT_S = 1.0
SIGTERM_WAIT_S = 0.5
GRACE_S = SIGINT_WAIT_S + SIGTERM_WAIT_S
_READ_SIZE = 64 * 1024


class PlaybookProcess:
    """One running command in its own process group, its output fed to a callback."""

    def __init__(self, process: asyncio.subprocess.Process, on_output: Callable[[str], None]):
        self._process = process
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._reader = asyncio.create_task(self._pump())
        self.cancel_requested = False
        self.timed_out = False

    @classmethod
    async def spawn(
        cls,
        command: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        on_output: Callable[[str], None],
        niceness: int = 0,
    ) -> PlaybookProcess:
        """`niceness` > 0 runs the command through nice(1) (exec'd: the pid stays the same)."""
        nice = shutil.which("nice") if niceness > 0 else None
        prefix = [nice, "-n", str(niceness)] if nice else []
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process, on_output)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def wait(self, limit_s: float | None = None) -> int:
        """Wait for the exit and the end of output; past `limit_s` the run is stopped."""
        try:
            await asyncio.wait_for(asyncio.shield(self._process.wait()), limit_s)
        except TimeoutError:
            self.timed_out = True
            await self._stop()
        # Module processes that outlived ansible-playbook would keep the pipe open.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        self._reader.cancel()
        return self._process.returncode if self._process.returncode is not None else -1

    async def cancel(self) -> None:
        """Ask the run to stop like Ctrl-C, escalating if it does not; returns once it exited."""
        already = self.cancel_requested
        self.cancel_requested = True
        if not already:
            await self._stop()
        else:
            # A repeated cancel signals again (reference: "POST again and escalate").
            self._signal_group(signal.SIGINT)

    async def _stop(self) -> None:
        for sig, wait_s in ((signal.SIGINT, SIGINT_WAIT_S), (signal.SIGTERM, SIGTERM_WAIT_S)):
            self._signal_group(sig)
            try:
                await asyncio.wait_for(asyncio.shield(self._process.wait()), wait_s)
                break
            except TimeoutError:
                continue
        self._signal_group(signal.SIGKILL)
        await self._process.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id equals the pid (new session); it may already be gone, which is fine.
        signal_group(self._process.pid, sig, leader_reaped=self._process.returncode is not None)

    async def _pump(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        while chunk := await stream.read(_READ_SIZE):
            self._deliver(self._decoder.decode(chunk))
        self._deliver(self._decoder.decode(b"", final=True))

    def _deliver(self, text: str) -> None:
        if not text:
            return
        try:
            self._on_output(text)
        except Exception:  # a broken consumer must not leave the pipe undrained
            log.exception("output consumer failed for pid %s", self._process.pid)
