"""A standby through an API-server outage asks once per retry period; one without `watch` on
leases reads once per period too (its refused watch does not end the wait); a released Lease is
still taken at once, by the watch event, not at the next period.

The elector (the operator's own LeaderElector and LeaseClient over kubernetes_asyncio) talks to
a real local API server through a TCP relay of this test. While the relay refuses (it accepts
each connection and closes it at once, as a dead API server behind a load balancer does), every
request the standby makes is a new connection the relay counts: the proof is the gap between
any two of them, which the standby's schedule, not the machine's speed, decides.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client

from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver
from cloudkit.local.private import write_private
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.operator_account import token_kubeconfig
from cloudkit.operator.kube import load_configuration
from cloudkit.operator.leadership_loop import LeaderElector, LeaseClient
from cloudkit.operator.settings import LeaderElectionSettings
from tests.waiting import until

pytestmark = pytest.mark.stack

NAMESPACE, NAME = "default", "standby-proof"
LEASE = resource_path("coordination.k8s.io", "v1", "leases", namespace=NAMESPACE, name=NAME)
OTHER = "the-leader"


class Relay:
    """Forwards TCP to `target` until `refuse()`; then accepts and closes every connection at
    once (live ones are cut too), noting when each came (`refused_at`, loop time)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.refusing = False
        self.refused_at: list[float] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def refuse(self) -> None:
        self.refusing = True
        for writer in list(self._open):
            writer.close()

    def forward(self) -> None:
        self.refusing = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused_at.append(asyncio.get_running_loop().time())
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._open.update({writer, up_writer})
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for stream in (writer, up_writer):
            self._open.discard(stream)
            stream.close()

    async def stop(self) -> None:
        self.refuse()
        if self._server is not None:
            self._server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, RuntimeError):
        return  # the relay cut the connection


@dataclass
class Standby:
    """One elector through the relay, standing against OTHER's Lease."""

    elector: LeaderElector
    relay: Relay
    admin: KubeClient
    task: asyncio.Task[None]

    async def lease(self) -> dict[str, Any]:
        found = await self.admin.get(LEASE)
        assert found is not None
        return found


@pytest_asyncio.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[ApiServerHandle]:
    handle = await start_apiserver(tmp_path / "apiserver")
    try:
        yield handle
    finally:
        await handle.stop()


def _relayed(kubeconfig: Path, port: int, target: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        server = cluster["cluster"]["server"]
        cluster["cluster"]["server"] = re.sub(r":\d+$", f":{port}", server.rstrip("/"))
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target


@contextlib.asynccontextmanager
async def standing(
    apiserver: ApiServerHandle, state: Path, *, retry_s: float, kubeconfig: Path | None = None
) -> AsyncIterator[Standby]:
    """OTHER holds the Lease (for an hour, so it never expires here); the elector stands, with
    `kubeconfig`'s credentials (the admin's by default)."""
    relay = Relay(_address(apiserver.url))
    await relay.start()
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as admin:
        await admin.create(
            resource_path("coordination.k8s.io", "v1", "leases", namespace=NAMESPACE),
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "spec": {"holderIdentity": OTHER, "leaseDurationSeconds": 3600},
            },
        )
        if kubeconfig is None:
            kubeconfig = _relayed(apiserver.kubeconfig, relay.port, state / "relayed.kubeconfig")
        api = client.ApiClient(configuration=await load_configuration(kubeconfig))
        settings = LeaderElectionSettings(
            lease_name=NAME,
            namespace=NAMESPACE,
            identity="the-standby",
            lease_duration=timedelta(seconds=retry_s * 3),
            renew_deadline=timedelta(seconds=retry_s * 2),
            retry_period=timedelta(seconds=retry_s),
        )
        elector = LeaderElector(LeaseClient(api, NAMESPACE, NAME), settings)
        task = asyncio.create_task(elector.run())
        standby = Standby(elector, relay, admin, task)
        try:
            await asyncio.wait_for(elector.observed.wait(), 30)
            assert elector.holder == OTHER and not elector.leading.is_set()
            yield standby
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.close()
            await relay.stop()


def _address(url: str) -> tuple[str, int]:
    match = re.match(r"^\w+://([^/:]+):(\d+)", url)
    assert match, url
    return match.group(1), int(match.group(2))


async def test_a_standby_through_an_outage_asks_at_most_once_per_retry_period(
    apiserver: ApiServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Long enough that back-to-back requests (the defect) never look a period apart, however
    # slowly this loaded machine refuses a connection.
    retry_s = 2.0
    caplog.set_level(logging.INFO, logger="cloudkit.operator.leadership")
    async with standing(apiserver, tmp_path, retry_s=retry_s) as standby:
        caplog.clear()
        standby.relay.refuse()
        refused = standby.relay.refused_at
        await until(lambda: _value(len(refused)), lambda n: n >= 4, within=60, what="4 tries")
        standby.relay.forward()
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(refused)]
        print(f"\nrequests during the outage: {len(refused)}, gaps (s): {gaps}")
        # asyncio.sleep never ends early; only clock granularity separates the two clocks.
        assert min(gaps) >= retry_s - 0.01, f"more than one request per {retry_s}s: {gaps}"

        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        # Once per outage (reading, and the watch if one was cut), not once per round.
        kinds = sorted(w.split(":")[1].strip() for w in warnings)
        assert "reading the Lease" in kinds and len(kinds) == len(set(kinds)), warnings
        await until(
            lambda: _value([r.getMessage() for r in caplog.records]),
            lambda lines: any("works again" in line for line in lines),
            within=30,
            what="the end of the outage logged",
        )
        assert not standby.elector.leading.is_set(), "OTHER still holds the Lease"


async def test_a_released_lease_is_taken_at_once_by_the_watch_event(
    apiserver: ApiServerHandle, tmp_path: Path
) -> None:
    # A retry period far longer than any delay of this machine: a takeover sooner than half of
    # it was woken by the watch, not by the period.
    retry_s = 30.0
    async with standing(apiserver, tmp_path, retry_s=retry_s) as standby:
        loop = asyncio.get_running_loop()
        lease = await standby.lease()
        lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
        await standby.admin.request("PUT", LEASE, body=lease)
        released = loop.time()
        await asyncio.wait_for(standby.elector.leading.wait(), retry_s / 2)
        took = loop.time() - released
        print(f"\nreleased Lease taken in {took * 1000:.0f} ms (retry period {retry_s:g}s)")
        assert (await standby.lease())["spec"]["holderIdentity"] == "the-standby"


NO_WATCH = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "leases-without-watch", "namespace": NAMESPACE},
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "create", "update"],
            }
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "leases-without-watch", "namespace": NAMESPACE},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "leases-without-watch",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "no-watch", "namespace": NAMESPACE}],
    },
]


async def _account_without_watch(apiserver: ApiServerHandle, target: Path) -> Path:
    """A ServiceAccount whose Role has every Lease verb the election uses but `watch`; its
    kubeconfig."""
    async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as admin:
        accounts = resource_path("", "v1", "serviceaccounts", namespace=NAMESPACE)
        await admin.create(accounts, {"metadata": {"name": "no-watch"}})
        rbac = ("rbac.authorization.k8s.io", "v1")
        await admin.create(resource_path(*rbac, "roles", namespace=NAMESPACE), NO_WATCH[0])
        await admin.create(resource_path(*rbac, "rolebindings", namespace=NAMESPACE), NO_WATCH[1])
        issued = await admin.create(f"{accounts}/no-watch/token", {"spec": {}})
    write_private(
        target, token_kubeconfig(apiserver.kubeconfig.read_text(), issued["status"]["token"])
    )
    return target


async def test_a_standby_without_watch_on_leases_reads_once_per_retry_period(
    apiserver: ApiServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Counted at the server: its audit log has a line per request of a ServiceAccount."""
    # Long enough that back-to-back requests (the defect) never look a period apart, however
    # slowly this loaded machine refuses a connection.
    retry_s = 2.0
    caplog.set_level(logging.INFO, logger="cloudkit.operator.leadership")
    kubeconfig = await _account_without_watch(apiserver, tmp_path / "no-watch.kubeconfig")
    audit = tmp_path / "apiserver" / "audit.jsonl"
    async with standing(apiserver, tmp_path, retry_s=retry_s, kubeconfig=kubeconfig) as standby:
        await until(
            lambda: _value(_requests(audit, 0)),
            lambda mine: any(e["verb"] == "watch" and not e["allowed"] for e in mine),
            within=60,
            what="a refused watch",
        )
        loop = asyncio.get_running_loop()
        offset, started = audit.stat().st_size, loop.time()
        await asyncio.sleep(4 * retry_s)  # the window the requests are counted in
        window = loop.time() - started
        mine = _requests(audit, offset)
        verbs = collections.Counter(entry["verb"] for entry in mine)
        print(f"\nwithout watch, in {window:.1f}s (retry {retry_s}s): {dict(verbs)}")
        # At most one read and one refused watch per period, whatever the machine's speed (a
        # request may precede the window by its latency: one more of each).
        bound = window / retry_s + 2
        assert verbs["get"] >= 1, "no request of the standby counted"
        assert verbs["get"] <= bound and verbs["watch"] <= bound, f"{dict(verbs)} > {bound:.0f}"
        assert not any(e["allowed"] for e in mine if e["verb"] == "watch")
        assert not standby.elector.leading.is_set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "watching the Lease" in warnings[0], warnings


def _requests(audit: Path, offset: int) -> list[dict[str, Any]]:
    """The no-watch ServiceAccount's requests in the API server's audit log after `offset`."""
    with audit.open() as lines:
        lines.seek(offset)
        entries = [json.loads(line) for line in lines]
    return [e for e in entries if e["user"] == "system:serviceaccount:default:no-watch"]


async def _value(value: Any) -> Any:
    return value
