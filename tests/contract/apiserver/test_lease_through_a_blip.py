"""A leader whose connection to the API server falls into a black hole for less than a retry
period keeps its Lease: the renewal lost in the hole is abandoned in time for another, on a
fresh connection, before the renew deadline; and one whose black hole ends after its second
hanging attempt has begun still renews before the deadline, by an attempt started beside the
hanging ones (the elector against the real API server, through the stack's fault relay)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.stack import environment
from cloudkit.local.stack.faults import FaultRelay, Mode
from cloudkit.operator.kube import load_configuration
from cloudkit.operator.leadership_loop import LeaderElector, LeaseClient
from cloudkit.operator.settings import LeaderElectionSettings
from tests.waiting import until

RETRY = timedelta(seconds=1)
DEADLINE = timedelta(seconds=6)


@pytest.fixture
def kubeconfig_text(apiserver_session: ApiServerHandle) -> str:
    return Path(apiserver_session.kubeconfig).read_text()


@pytest.fixture
async def relay(kubeconfig_text: str) -> AsyncIterator[FaultRelay]:
    host, port = environment.kubeconfig_server(kubeconfig_text).split("://")[1].rsplit(":", 1)
    relay = FaultRelay(host, int(port))
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
async def api(
    kubeconfig_text: str, relay: FaultRelay, tmp_path: Path
) -> AsyncIterator[client.ApiClient]:
    routed = tmp_path / "kubeconfig"
    server = f"https://127.0.0.1:{relay.port}"
    await asyncio.to_thread(
        routed.write_text, environment.kubeconfig_with_server(kubeconfig_text, server)
    )
    api_client = client.ApiClient(configuration=await load_configuration(routed))
    yield api_client
    await api_client.close()


async def test_a_leader_keeps_its_lease_through_a_short_black_hole(
    api: client.ApiClient, relay: FaultRelay
) -> None:
    settings = LeaderElectionSettings(
        lease_name=f"blip-{uuid.uuid4().hex[:8]}",
        namespace="default",
        identity="leader",
        lease_duration=timedelta(seconds=9),
        renew_deadline=DEADLINE,
        retry_period=RETRY,
    )
    leases = LeaseClient(api, settings.namespace, settings.lease_name)
    elector = LeaderElector(leases, settings)
    election = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.leading.wait(), 30)
        await relay.set_mode(Mode.BLACK_HOLE)  # the pooled connection is caught in it

        async def caught() -> int:
            return relay.faulted + len(relay.sent_at)

        before = len(relay.sent_at)
        await until(caught, lambda n: n > before + 1, within=10, what="a renewal in the hole")
        await relay.set_mode(Mode.PASS)
        blip_over = asyncio.get_running_loop().time()

        async def renewed_since() -> str:
            lease = await leases.read() or {}
            return str((lease.get("spec") or {}).get("renewTime") or "")

        first = await renewed_since()
        await until(renewed_since, lambda t: t != first, within=30, what="a renewal after it")
        # Past the deadline the blip could have cost, the leader still leads.
        left = blip_over + DEADLINE.total_seconds() - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, left))  # waiting out a deadline is the subject here
        assert not elector.lost.is_set(), "a blip shorter than a retry period cost the Lease"
        assert elector.holder == "leader"
    finally:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)


LONG_HOLE_S = 5.2
"""Longer than an attempt's timeout plus a retry period after the attempt that fell in the
hole (3 + 1 s), so waiting out each attempt before the next (as the elector did) meets the
hole's end only with an attempt that cannot finish before the deadline (9 s)."""


async def test_a_leader_renews_through_a_hole_longer_than_two_attempts(
    api: client.ApiClient, relay: FaultRelay
) -> None:
    settings = LeaderElectionSettings(
        lease_name=f"hole-{uuid.uuid4().hex[:8]}",
        namespace="default",
        identity="leader",
        lease_duration=timedelta(seconds=12),
        renew_deadline=timedelta(seconds=9),
        retry_period=RETRY,
    )
    leases = LeaseClient(api, settings.namespace, settings.lease_name)
    elector = LeaderElector(leases, settings)
    election = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.leading.wait(), 30)
        loop = asyncio.get_running_loop()
        hole_began = loop.time()
        await relay.set_mode(Mode.BLACK_HOLE)
        await asyncio.sleep(LONG_HOLE_S)  # the hole's length is the subject here
        await relay.set_mode(Mode.PASS)
        # The last renewal came before the hole: past its deadline, lost or not is decided.
        decided = hole_began + settings.renew_deadline.total_seconds() + 1.0
        await asyncio.sleep(max(0.0, decided - loop.time()))
        assert not elector.lost.is_set(), "the Lease was lost to a hole shorter than the deadline"
        assert elector.holder == "leader"
    finally:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
