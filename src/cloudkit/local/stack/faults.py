"""Faults on the wire between the stack's parts: a TCP relay that passes bytes, goes silent or
refuses connections, switched by hand or by a plan drawn from a seed.

A silent relay is a network partition as a client sees it: connections stay open, requests
hang, nothing fails fast. A refusing relay is a peer that is down: the port stops listening
(connection refused) and open connections are reset. A plan is the same for the same seed, so a
run with faults can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from dataclasses import dataclass
from enum import StrEnum

from cloudkit.local.stack.ports import HOST


class Mode(StrEnum):
    PASS = "pass"
    SILENT = "silent"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Fault:
    """`mode` from `at_s` seconds after the plan starts, for `for_s` seconds; then pass."""

    at_s: float
    mode: Mode
    for_s: float


def fault_plan(
    seed: int,
    *,
    span_s: float,
    count: int,
    longest_s: float,
    modes: tuple[Mode, ...] = (Mode.SILENT, Mode.REFUSE),
) -> tuple[Fault, ...]:
    """`count` faults inside `span_s` seconds, none overlapping, each at most `longest_s` long;
    the same seed gives the same plan."""
    if count < 0 or span_s <= 0 or longest_s <= 0:
        raise ValueError(
            f"fault plan: count must be >= 0 and span_s, longest_s > 0 "
            f"(got count={count}, span_s={span_s}, longest_s={longest_s})"
        )
    if count * longest_s > span_s:
        raise ValueError(
            f"fault plan: {count} faults of up to {longest_s}s do not fit in span_s={span_s}"
        )
    rng = random.Random(seed)
    slot = span_s / max(count, 1)
    faults = []
    for index in range(count):
        length = rng.uniform(longest_s / 4, longest_s)
        start = index * slot + rng.uniform(0, slot - length)
        faults.append(Fault(round(start, 3), rng.choice(modes), round(length, 3)))
    return tuple(faults)


class FaultRelay:
    """A TCP relay on 127.0.0.1 to `target`. `mode` decides what it does with traffic;
    `sent_at` records (monotonic) when a client sent bytes, `changes` when the mode changed."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode = Mode.PASS
        self.port = port
        self.sent_at: list[float] = []
        self.changes: list[tuple[float, Mode]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def set_mode(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        self.changes.append((time.monotonic(), mode))
        previous, self.mode = self.mode, mode
        if mode is Mode.REFUSE:
            await self._close_server()
            for writer in list(self._connections):
                _reset(writer)
        elif previous is Mode.REFUSE:
            await self.start()

    async def follow(self, faults: tuple[Fault, ...]) -> None:
        """Apply `faults` from now on (each relative to this call), passing between them."""
        began = time.monotonic()
        for fault in sorted(faults, key=lambda f: f.at_s):
            await asyncio.sleep(max(0.0, began + fault.at_s - time.monotonic()))
            await self.set_mode(fault.mode)
            await asyncio.sleep(fault.for_s)
            await self.set_mode(Mode.PASS)

    async def stop(self) -> None:
        await self._close_server()
        for writer in list(self._connections):
            writer.close()
        for task in list(self._tasks):
            task.cancel()

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.REFUSE:  # accepted just before the listener closed
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._connections.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, from_client=True)),
            asyncio.create_task(self._pipe(up_reader, writer, from_client=False)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            for stream in (writer, up_writer):
                self._connections.discard(stream)
                stream.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if from_client:
                    self.sent_at.append(time.monotonic())
                if self.mode is not Mode.PASS:
                    continue  # silent: the bytes go nowhere, the connection stays open
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (linger 0), as a peer that went away does to its open connections."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
