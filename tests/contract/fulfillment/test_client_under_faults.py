"""The fulfillment client behind the stack's fault relay, against the real service: a read
whose connections are refused, reset or black-holed is tried again and succeeds once the fault
is over (each retry counted); a create is sent once, whatever happens to it; the private event
stream hears a heartbeat while quiet, so a black-holed one ends on its silence."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from cloudkit.fulfillment.client import STREAM_SILENCE_S, FulfillmentClient
from cloudkit.fulfillment.routes.events import HEARTBEAT_S
from cloudkit.local.stack.faults import FaultRelay, Mode
from tests.harness.fulfillment import PRIVATE_EVENTS, FulfillmentService, Tenant
from tests.waiting import until

DEADLINE_S = 1.0


@pytest.fixture
async def relay(service: FulfillmentService) -> AsyncIterator[FaultRelay]:
    host, port = service.url.split("://", 1)[1].rsplit(":", 1)
    relay = FaultRelay(host, int(port))
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
async def tenant_client(
    service: FulfillmentService, relay: FaultRelay
) -> AsyncIterator[FulfillmentClient]:
    token = service.token(f"faults-{uuid.uuid4().hex[:8]}")
    client = FulfillmentClient(
        f"https://127.0.0.1:{relay.port}",
        lambda: token,
        ca_file=service.ca_file,
        timeout_s=DEADLINE_S,
        attempts=4,
    )
    yield client
    await client.close()


async def _heal_after_first(relay: FaultRelay, client: FulfillmentClient) -> None:
    """The fault ends once it has struck (a connection caught, or a refusal the client is
    retrying): a later attempt must find it over."""

    async def struck() -> int:
        return relay.faulted + client.retried

    await until(struck, lambda n: n >= 1, within=30, what="the fault struck", interval=0.01)
    await relay.set_mode(Mode.PASS)


@pytest.mark.parametrize("mode", [Mode.REFUSE, Mode.RESET, Mode.BLACK_HOLE])
async def test_a_read_is_retried_through_a_fault_and_succeeds(
    tenant_client: FulfillmentClient, relay: FaultRelay, mode: Mode
) -> None:
    await relay.set_mode(mode)
    healing = asyncio.create_task(_heal_after_first(relay, tenant_client))
    page = await asyncio.wait_for(tenant_client.list(), DEADLINE_S * 30)
    await healing
    assert page.total == 0
    assert tenant_client.retried >= 1


async def test_a_create_is_sent_once_whatever_happens_to_it(
    tenant_client: FulfillmentClient, relay: FaultRelay
) -> None:
    await relay.set_mode(Mode.RESET)
    create: Callable[[], object] = lambda: tenant_client.create(  # noqa: E731
        {"metadata": {"name": "once"}, "spec": {"template": "small"}}
    )
    with pytest.raises(OSError):
        await asyncio.wait_for(create(), DEADLINE_S * 30)  # type: ignore[arg-type]
    assert tenant_client.retried == 0
    assert relay.faulted == 1, "one attempt reached the wire"


async def test_a_quiet_private_stream_sends_a_heartbeat(admin: Tenant) -> None:
    """Nothing matches the filter, so all the stream can carry is its heartbeat: an empty
    line within a heartbeat period (and the reader's silence allows two of them)."""
    assert STREAM_SILENCE_S >= 2 * HEARTBEAT_S
    nothing = f'this.id == "{uuid.uuid4()}"'
    async with admin.http.get(PRIVATE_EVENTS, params={"filter": nothing}) as stream:
        assert stream.status == 200
        started = time.monotonic()
        line = await asyncio.wait_for(stream.content.readline(), HEARTBEAT_S * 3)
        assert line == b"\n", line
        assert time.monotonic() - started >= HEARTBEAT_S * 0.5, "a heartbeat, not an event"


async def test_a_black_holed_private_stream_ends_on_its_silence(
    service: FulfillmentService, admin_token: str, relay: FaultRelay
) -> None:
    """The controller's stream, open through the relay, is caught in a black hole: it ends
    with an error once silent for `stream_silence_s` (the controller then re-lists on a fresh
    connection) instead of hiding every later event for good."""
    silence = HEARTBEAT_S * 1.5
    api = FulfillmentClient(
        f"https://127.0.0.1:{relay.port}",
        lambda: admin_token,
        ca_file=service.ca_file,
        private=True,
        stream_silence_s=silence,
    )
    try:
        async with api.watch() as events:
            await relay.set_mode(Mode.BLACK_HOLE)
            started = time.monotonic()
            with pytest.raises(aiohttp.ServerTimeoutError):
                async with asyncio.timeout(silence * 4):
                    async for event in events:
                        pytest.fail(f"an event through a black hole: {event}")
            assert time.monotonic() - started >= silence * 0.9
    finally:
        await api.close()
