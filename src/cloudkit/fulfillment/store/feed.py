"""The in-process event feed: committed changes fanned out to subscribers' bounded queues.

Publishing never waits: a subscriber whose queue is full is dropped (its iteration ends with
`overflowed` set) and its client re-lists, so a slow reader cannot hold up a writer. A
subscriber that is simply abandoned disappears with its iterator (the feed holds it weakly).
"""

from __future__ import annotations

import asyncio
import collections
import weakref

from cloudkit.fulfillment.store.base import Event

SUBSCRIBER_QUEUE_LIMIT = 10_000


class Subscription:
    """One subscriber's events in commit order; iterate it with `async for`."""

    def __init__(self, feed: Feed, limit: int) -> None:
        self._feed = feed
        self._limit = limit
        self._items: collections.deque[Event] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._items) >= self._limit:
            self.overflowed = True
            self.close()
            return
        self._items.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._feed.forget(self)
        self._wake()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.overflowed:
            # What was queued before the overflow is stale by now: the client re-lists.
            self._items.clear()
            raise StopAsyncIteration
        return self._items.popleft()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Feed:
    """Subscribers registered now receive every event published from now on."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self.closed = False

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._limit or SUBSCRIBER_QUEUE_LIMIT)
        if self.closed:
            subscription.closed = True
        else:
            self._subscribers.add(subscription)
        return subscription

    def publish(self, event: Event) -> None:
        for subscription in list(self._subscribers):
            subscription.offer(event)

    def forget(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def end_subscriptions(self) -> None:
        """End every current subscription (events were lost: their clients re-list)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def close(self) -> None:
        self.closed = True
        self.end_subscriptions()
