"""The stack's fault relay over real sockets (an echo server behind it) and its seeded plans."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from cloudkit.local.stack.faults import Fault, FaultRelay, Mode, fault_plan
from cloudkit.local.stack.ports import HOST
from tests.waiting import until

QUIET_S = 0.5
"""How long a silent relay must stay silent for the test to call it silent."""


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def relay() -> AsyncIterator[FaultRelay]:
    server = await asyncio.start_server(_echo, HOST, 0)
    relay = FaultRelay(HOST, server.sockets[0].getsockname()[1])
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()
        server.close()


async def _connect(relay: FaultRelay) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, relay.port)


async def _echoes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(4), 10)


async def test_passing_relays_both_ways_and_records_sends(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    assert await _echoes(reader, writer) == b"ping"
    assert len(relay.sent_at) == 1
    writer.close()


async def test_silent_swallows_bytes_but_keeps_the_connection(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    await relay.set_mode(Mode.SILENT)
    writer.write(b"ping")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4), QUIET_S)
    assert not reader.at_eof(), "a partition hangs; it does not close"
    assert relay.sent_at, "the client's bytes were seen (and dropped)"
    await relay.set_mode(Mode.PASS)
    assert await _echoes(*await _connect(relay)) == b"ping"
    writer.close()


async def test_refuse_resets_open_connections_and_refuses_new_ones(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    assert await _echoes(reader, writer) == b"ping"
    await relay.set_mode(Mode.REFUSE)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _echoes(reader, writer)
    with pytest.raises(ConnectionRefusedError):
        await _connect(relay)
    await relay.set_mode(Mode.PASS)
    assert await _echoes(*await _connect(relay)) == b"ping", "the same port listens again"
    assert [mode for _, mode in relay.changes] == [Mode.REFUSE, Mode.PASS]


async def test_follow_applies_a_plan_and_ends_passing(relay: FaultRelay) -> None:
    plan = (Fault(0.0, Mode.REFUSE, 0.2), Fault(0.3, Mode.SILENT, 0.2))
    await relay.follow(plan)
    assert [mode for _, mode in relay.changes] == [Mode.REFUSE, Mode.PASS, Mode.SILENT, Mode.PASS]
    assert relay.mode is Mode.PASS


def test_a_seed_gives_one_plan_of_non_overlapping_faults_inside_the_span() -> None:
    plan = fault_plan(7, span_s=60, count=5, longest_s=8)
    assert plan == fault_plan(7, span_s=60, count=5, longest_s=8)
    assert plan != fault_plan(8, span_s=60, count=5, longest_s=8)
    assert len(plan) == 5
    ends = [(f.at_s, f.at_s + f.for_s) for f in plan]
    assert all(start >= 0 and end <= 60 for start, end in ends)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(ends))
    assert all(f.for_s <= 8 for f in plan)


@pytest.mark.parametrize(
    ("count", "span_s", "longest_s"), [(-1, 10, 1), (1, 0, 1), (1, 10, 0), (3, 10, 5)]
)
def test_an_impossible_plan_names_its_numbers(count: int, span_s: float, longest_s: float) -> None:
    with pytest.raises(ValueError, match="fault plan"):
        fault_plan(1, span_s=span_s, count=count, longest_s=longest_s)


async def test_reset_lets_a_request_start_then_resets_the_connection(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    assert await _echoes(reader, writer) == b"ping"
    await relay.set_mode(Mode.RESET)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _echoes(reader, writer)  # the open connection was reset
    reader, writer = await _connect(relay)  # still listening: not a refusal
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _echoes(reader, writer)
    assert relay.faulted == 2
    await relay.set_mode(Mode.PASS)
    assert await _echoes(*await _connect(relay)) == b"ping"


async def test_a_black_hole_never_answers_the_connections_it_caught(relay: FaultRelay) -> None:
    caught_open = await _connect(relay)
    assert await _echoes(*caught_open) == b"ping"
    await relay.set_mode(Mode.BLACK_HOLE)
    caught_new = await _connect(relay)  # accepted

    async def faulted() -> int:
        return relay.faulted

    await until(faulted, lambda n: n == 2, within=10, what="the new connection caught")
    await relay.set_mode(Mode.PASS)
    for reader, writer in (caught_open, caught_new):
        writer.write(b"ping")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(4), QUIET_S)
        assert not reader.at_eof(), "a black hole neither answers nor closes"
    assert await _echoes(*await _connect(relay)) == b"ping", "new connections pass after it"


async def test_slow_adds_its_delay_each_way(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    await relay.set_mode(Mode.SLOW, delay_s=0.3)
    started = asyncio.get_running_loop().time()
    assert await _echoes(reader, writer) == b"ping"
    assert asyncio.get_running_loop().time() - started >= 0.6  # to the server, and back


async def test_follow_repeats_a_plan_every_period(relay: FaultRelay) -> None:
    plan = (Fault(0.0, Mode.RESET, 0.05),)
    following = asyncio.create_task(relay.follow(plan, every_s=0.2))

    async def resets() -> int:
        return sum(1 for _, mode in relay.changes if mode is Mode.RESET)

    await until(resets, lambda n: n >= 3, within=10, what="three rounds of the plan")
    following.cancel()


def test_a_string_seed_gives_one_plan_and_slow_faults_carry_a_delay() -> None:
    modes = tuple(Mode)[1:]
    plan = fault_plan("7/link", span_s=60, count=12, longest_s=4, modes=modes)
    assert plan == fault_plan("7/link", span_s=60, count=12, longest_s=4, modes=modes)
    assert plan != fault_plan("7/other", span_s=60, count=12, longest_s=4, modes=modes)
    assert all((f.delay_s > 0) == (f.mode is Mode.SLOW) for f in plan)
    assert any(f.mode is Mode.SLOW for f in plan)


async def test_lost_answers_reach_the_server_but_never_come_back(relay: FaultRelay) -> None:
    reader, writer = await _connect(relay)
    assert await _echoes(reader, writer) == b"ping"
    await relay.set_mode(Mode.LOSE_ANSWERS)
    writer.write(b"ping")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4), QUIET_S)
    assert len(relay.sent_at) == 2, "the request went through"
    await relay.set_mode(Mode.PASS)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4), QUIET_S)  # that connection stays lost
    assert await _echoes(*await _connect(relay)) == b"ping"
