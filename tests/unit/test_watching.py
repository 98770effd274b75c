"""What the one watch loop (cloudkit.watching) does next, without a server: after a list, an
event, a watch the server ended, a 410, a failure; and its back-off. The loop against the local
API server with the kubernetes clients: tests/contract/apiserver/test_watch_following.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from cloudkit.watching import SHORTEST_WATCH_S, Backoff, Cursor, Follower, follow, is_gone


class Gone(Exception):
    status = 410


class Refused(Exception):
    status = 503


def cursor() -> Cursor:
    return Cursor("widgets", transient=(Refused, OSError))


def test_the_back_off_doubles_to_its_ceiling_and_starts_over_after_a_success() -> None:
    backoff = Backoff(first=0.2, ceiling=1.0)
    assert [backoff.pause() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.pause() == 0.2


def test_a_follow_lists_first_then_resumes_from_the_last_event_s_version() -> None:
    follow_ = cursor()
    assert follow_.must_list
    follow_.listed("10")
    assert (follow_.version, follow_.must_list, follow_.lists) == ("10", False, 1)
    follow_.saw("12")
    follow_.saw(None)  # an event without a version leaves the place unchanged
    assert follow_.version == "12"


def test_a_watch_the_server_ended_resumes_at_once_from_the_same_version() -> None:
    follow_ = cursor()
    follow_.listed("10")
    assert follow_.ended(started=0.0, events=0, now=SHORTEST_WATCH_S + 30) == 0.0
    assert follow_.ended(started=0.0, events=3, now=0.1) == 0.0
    assert follow_.version == "10" and not follow_.must_list


def test_a_watch_that_ends_at_once_without_an_event_is_a_failure() -> None:
    follow_ = cursor()
    follow_.listed("10")
    assert follow_.ended(started=5.0, events=0, now=5.0) == 0.2
    assert follow_.ended(started=5.0, events=0, now=5.0) == 0.4
    assert follow_.version == "10"


def test_a_410_lists_again_at_once() -> None:
    follow_ = cursor()
    follow_.listed("10")
    follow_.broke(Refused())
    assert follow_.broke(Gone()) == 0.0
    assert follow_.must_list and follow_.version is None
    follow_.listed("40")
    assert follow_.broke(Refused()) == 0.2, "the list's success resets the back-off"


def test_a_failure_backs_off_and_resumes_from_the_version_it_had() -> None:
    follow_ = cursor()
    follow_.listed("10")
    assert [follow_.broke(Refused()), follow_.broke(OSError())] == [0.2, 0.4]
    assert follow_.version == "10" and not follow_.must_list
    follow_.saw("11")
    assert follow_.broke(OSError()) == 0.2


def test_a_failure_not_to_ride_out_ends_the_follow() -> None:
    follow_ = cursor()
    with pytest.raises(KeyError):
        follow_.broke(KeyError("a bug"))


def test_gone_is_410_in_any_client_s_words() -> None:
    assert is_gone(Gone()) and not is_gone(Refused()) and not is_gone(OSError())


async def test_a_stream_without_versions_is_subscribed_first_then_listed_each_time() -> None:
    """The fulfillment event stream: a list must follow every subscription, and come after
    it, so that nothing committed between the two is lost."""
    steps: list[str] = []
    second_event = asyncio.Event()
    follow_ = cursor()

    async def relist() -> None:
        steps.append("list")

    @contextlib.asynccontextmanager
    async def subscribe(version: str | None) -> AsyncIterator[AsyncIterator[str]]:
        assert version is None
        steps.append("subscribe")

        async def events() -> AsyncIterator[str]:
            yield "event"
            if steps.count("subscribe") == 2:
                await asyncio.Event().wait()  # the second stream stays open

        yield events()

    async def on_event(event: str) -> None:
        steps.append(event)
        if steps.count(event) == 2:
            second_event.set()

    stream = Follower(relist, subscribe, on_event, lambda _event: None, versioned=False)
    task = asyncio.create_task(follow(stream, follow_))
    try:
        async with asyncio.timeout(10):
            await second_event.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert steps == ["subscribe", "list", "event", "subscribe", "list", "event"]


async def test_an_event_whose_handler_failed_is_delivered_again() -> None:
    """The version moves on only after the handler returned: a resume replays the event."""
    opened: list[str | None] = []
    handled: list[str] = []
    done = asyncio.Event()

    async def relist() -> str:
        return "10"

    @contextlib.asynccontextmanager
    async def watch(version: str | None) -> AsyncIterator[AsyncIterator[str]]:
        opened.append(version)

        async def events() -> AsyncIterator[str]:
            yield "11"
            yield "12"
            await asyncio.Event().wait()

        yield events()

    async def on_event(event: str) -> None:
        if event == "12" and "12" not in handled:
            handled.append("12")
            raise OSError("the handler's write failed")
        handled.append(event)
        if handled.count("12") == 2:
            done.set()

    follow_ = Cursor("widgets", transient=(OSError,), backoff=Backoff(first=0.01))
    task = asyncio.create_task(follow(Follower(relist, watch, on_event, lambda e: e), follow_))
    try:
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert opened == ["10", "11"], "the resume skipped the event whose handler failed"
    assert follow_.lists == 1
