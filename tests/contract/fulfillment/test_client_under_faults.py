"""The fulfillment client behind the stack's fault relay, against the real service: a read
whose connections are refused, reset or black-holed is tried again and succeeds once the fault
is over (each retry counted); a create is sent once, whatever happens to it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from cloudkit.fulfillment.client import FulfillmentClient
from cloudkit.local.stack.faults import FaultRelay, Mode
from tests.harness.fulfillment import FulfillmentService
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
