"""Faults on the wire between the stack's parts: a TCP relay that passes bytes, goes silent,
refuses connections, resets them mid-request, black-holes them or slows them down, switched by
hand or by a plan drawn from a seed.

A silent relay is a network partition as a client sees it: connections stay open, requests
hang, nothing fails fast. A black hole is a partition that does not heal for the connections
it caught: every connection open or accepted during it never answers again (as a flow whose
NAT entry was dropped), so only the client's own deadline ends it; new connections pass once
it is over. A refusing relay is a peer that is down: the port stops listening (connection
refused) and open connections are reset. A resetting relay accepts, reads the start of a
request, then resets the connection (a peer that crashed mid-request). A relay that loses
answers delivers the client's bytes and drops the server's (the request is served, its answer
never arrives: the case a non-idempotent call such as a job launch must survive), and the
connections it caught stay silent, as a black hole's. A slow relay passes
every chunk after a delay (added latency). A plan is the same for the same seed, so a run
with faults can be replayed.
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
    RESET = "reset"
    BLACK_HOLE = "black-hole"
    LOSE_ANSWERS = "lose-answers"
    SLOW = "slow"


DELAY_S = (0.05, 0.5)
"""The range a planned SLOW fault's added latency is drawn from (per chunk, each way)."""


@dataclass(frozen=True)
class Fault:
    """`mode` from `at_s` seconds after the plan starts, for `for_s` seconds; then pass.
    `delay_s` is the added latency of a SLOW fault."""

    at_s: float
    mode: Mode
    for_s: float
    delay_s: float = 0.0


def fault_plan(
    seed: int | str,
    *,
    span_s: float,
    count: int,
    longest_s: float,
    modes: tuple[Mode, ...] = (Mode.SILENT, Mode.REFUSE),
) -> tuple[Fault, ...]:
    """`count` faults inside `span_s` seconds, none overlapping, each at most `longest_s` long;
    the same seed gives the same plan (a string seed too: random.Random hashes it stably)."""
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
        mode = rng.choice(modes)
        # Drawn only for SLOW, so the plans of the other modes stay what they were per seed.
        delay = round(rng.uniform(*DELAY_S), 3) if mode is Mode.SLOW else 0.0
        faults.append(Fault(round(start, 3), mode, round(length, 3), delay))
    return tuple(faults)


@dataclass(eq=False)
class _Connection:
    """One relayed connection: its two writers, and whether a black hole caught it."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    black_holed: bool = False


class FaultRelay:
    """A TCP relay on 127.0.0.1 to `target`. `mode` decides what it does with traffic;
    `sent_at` records (monotonic) when a client sent bytes, `changes` when the mode changed,
    `faulted` how many connections a fault refused, reset or black-holed."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.port = port
        self.sent_at: list[float] = []
        self.changes: list[tuple[float, Mode]] = []
        self.faulted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def set_mode(self, mode: Mode, *, delay_s: float = 0.0) -> None:
        """Switch to `mode` (`delay_s`: the added latency of SLOW)."""
        self.delay_s = delay_s
        if mode == self.mode:
            return
        self.changes.append((time.monotonic(), mode))
        previous, self.mode = self.mode, mode
        if mode is Mode.REFUSE:
            await self._close_server()
        if mode in (Mode.REFUSE, Mode.RESET):
            for connection in list(self._connections):
                self.faulted += 1
                _reset(connection.client)
                _reset(connection.upstream)
        elif mode is Mode.BLACK_HOLE:
            for connection in self._connections:
                self.faulted += not connection.black_holed
                connection.black_holed = True
        if previous is Mode.REFUSE and mode is not Mode.REFUSE:
            await self.start()

    async def follow(self, faults: tuple[Fault, ...], *, every_s: float | None = None) -> None:
        """Apply `faults` from now on (each relative to this call), passing between them;
        with `every_s`, again every `every_s` seconds (until cancelled)."""
        began = time.monotonic()
        while True:
            for fault in sorted(faults, key=lambda f: f.at_s):
                await asyncio.sleep(max(0.0, began + fault.at_s - time.monotonic()))
                await self.set_mode(fault.mode, delay_s=fault.delay_s)
                await asyncio.sleep(fault.for_s)
                await self.set_mode(Mode.PASS)
            if every_s is None:
                return
            began += every_s

    async def stop(self) -> None:
        await self._close_server()
        for connection in list(self._connections):
            connection.client.close()
            connection.upstream.close()
        for task in list(self._tasks):
            task.cancel()

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.REFUSE:  # accepted just before the listener closed
            self.faulted += 1
            _reset(writer)
            return
        if self.mode is Mode.RESET:  # the request starts, then the peer goes away
            with contextlib.suppress(ConnectionError):
                await reader.read(1)
            self.faulted += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        connection = _Connection(writer, up_writer, black_holed=self.mode is Mode.BLACK_HOLE)
        self.faulted += connection.black_holed
        self._connections.add(connection)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, connection, from_client=True)),
            asyncio.create_task(self._pipe(up_reader, writer, connection, from_client=False)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            self._connections.discard(connection)
            for stream in (writer, up_writer):
                stream.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        *,
        from_client: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if from_client:
                    self.sent_at.append(time.monotonic())
                if not from_client and self.mode is Mode.LOSE_ANSWERS:
                    self.faulted += not connection.black_holed
                    connection.black_holed = True  # the rest of this answer is lost too
                if self.mode is Mode.SILENT or connection.black_holed:
                    continue  # the bytes go nowhere, the connection stays open
                if self.mode is Mode.SLOW:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (linger 0), as a peer that went away does to its open connections."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
