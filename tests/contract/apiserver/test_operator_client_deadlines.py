"""The operator's Kubernetes client behind the stack's fault relay: a call into a black hole
fails at its deadline (it must not hold a reconcile worker), and the next call after the fault
goes through on a new connection; a refused connection fails at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.stack import environment
from cloudkit.local.stack.faults import FaultRelay, Mode
from cloudkit.operator.kube import Kube
from cloudkit.operator.kube_objects import InstanceKey

DEADLINE_S = 1.0
KEY = InstanceKey("default", "nobody")


@pytest.fixture
def kubeconfig_text(apiserver_session: ApiServerHandle) -> str:
    return Path(apiserver_session.kubeconfig).read_text()


@pytest.fixture
async def relay(kubeconfig_text: str) -> AsyncIterator[FaultRelay]:
    server = environment.kubeconfig_server(kubeconfig_text)
    host, port = server.split("://", 1)[1].rsplit(":", 1)
    relay = FaultRelay(host, int(port))
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
async def kube(kubeconfig_text: str, relay: FaultRelay, tmp_path: Path) -> AsyncIterator[Kube]:
    """The operator's client, its kubeconfig pointed at the relay (as `--faults` does)."""
    routed = tmp_path / "kubeconfig"
    server = f"https://127.0.0.1:{relay.port}"
    await asyncio.to_thread(
        routed.write_text, environment.kubeconfig_with_server(kubeconfig_text, server)
    )
    client = await Kube.connect(routed, timeout_s=DEADLINE_S)
    yield client
    await client.close()


async def test_a_call_into_a_black_hole_ends_at_its_deadline(kube: Kube, relay: FaultRelay) -> None:
    assert await kube.get_instance(KEY) is None  # through the relay: a 404 read as "gone"
    await relay.set_mode(Mode.BLACK_HOLE)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        # The outer bound only keeps a broken client from hanging the test.
        await asyncio.wait_for(kube.get_instance(KEY), DEADLINE_S * 20)
    assert time.monotonic() - started < DEADLINE_S * 10
    await relay.set_mode(Mode.PASS)
    assert await kube.get_instance(KEY) is None, "a new connection after the fault"


async def test_a_refused_connection_fails_the_call_at_once(kube: Kube, relay: FaultRelay) -> None:
    await relay.set_mode(Mode.REFUSE)
    started = time.monotonic()
    with pytest.raises(OSError):
        await asyncio.wait_for(kube.get_instance(KEY), DEADLINE_S * 20)
    assert time.monotonic() - started < DEADLINE_S * 5
