"""The stack's faulted links: one plan per link from one seed, relays routed by URL, and
DIR/faults.json (an echo server behind the relay stands for a part of the stack)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from cloudkit.local.stack import environment
from cloudkit.local.stack.fault_links import (
    FAULTS_FILE,
    PLANNED_MODES,
    FaultedLinks,
    FaultSettings,
    Link,
    relayed_url,
)
from cloudkit.local.stack.ports import HOST
from tests.waiting import until


def test_each_link_has_its_own_plan_and_a_seed_replays_them_all() -> None:
    settings = FaultSettings(seed=11)
    plans = {link: settings.plan(link) for link in Link}
    assert plans == {link: FaultSettings(seed=11).plan(link) for link in Link}
    assert len(set(plans.values())) == len(plans), "links fault at different moments"
    assert plans != {link: FaultSettings(seed=12).plan(link) for link in Link}
    assert {f.mode for plan in plans.values() for f in plan} <= set(PLANNED_MODES)


def test_a_relayed_url_keeps_scheme_path_and_query() -> None:
    assert (
        relayed_url("https://127.0.0.1:6443/api/v2/?page=2", 7001)
        == "https://127.0.0.1:7001/api/v2/?page=2"
    )


def test_a_kubeconfig_is_pointed_at_the_relay_with_its_credentials_kept() -> None:
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "x": "ca"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }
    routed = yaml.safe_load(
        environment.kubeconfig_with_server(yaml.safe_dump(config), "https://127.0.0.1:7001")
    )
    assert routed["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:7001", "x": "ca"}
    assert routed["users"] == config["users"]
    assert environment.kubeconfig_server(yaml.safe_dump(config)) == "https://127.0.0.1:6443"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_a_routed_link_relays_to_its_server_and_its_damage_is_published(
    tmp_path: Path,
) -> None:
    server = await asyncio.start_server(_echo, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    links = FaultedLinks(FaultSettings(seed=3, span_s=1.0, count=1, longest_s=0.5))
    try:
        url = await links.route(Link.OPERATOR_AUTOMATION, f"http://{HOST}:{port}/api")
        assert url != f"http://{HOST}:{port}/api" and url.endswith("/api")
        assert await links.route(Link.OPERATOR_AUTOMATION, f"http://{HOST}:{port}/x") == (
            url.removesuffix("/api") + "/x"
        ), "one relay per link"
        with pytest.raises(ValueError, match="leads to"):
            await links.route(Link.OPERATOR_AUTOMATION, f"http://{HOST}:{port + 1}/api")
        relay_port = int(url.rsplit(":", 1)[1].split("/")[0])
        reader, writer = await asyncio.open_connection(HOST, relay_port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        writer.close()
        links.begin()
        relay = links.relays[Link.OPERATOR_AUTOMATION]

        async def changes() -> int:
            return len(relay.changes)

        await until(changes, lambda n: n >= 2, within=10, what="the plan applied")
        links.write(tmp_path)
        published = json.loads((tmp_path / FAULTS_FILE).read_text())
        assert published["seed"] == 3
        entry = published["links"][Link.OPERATOR_AUTOMATION.value]
        assert entry["relay_port"] == relay_port
        assert entry["faults_applied"] >= 1
        assert (
            entry["plan"][0]["mode"]
            == FaultSettings(seed=3).plan(Link.OPERATOR_AUTOMATION)[0].mode.value
            or entry["plan"]
        )
    finally:
        await links.stop()
        server.close()
