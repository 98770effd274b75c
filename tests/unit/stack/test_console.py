"""The ready panel from plain data: no stack, no supervisor, tokens only as file paths."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from cloudkit.local.stack.console import StackConsole
from cloudkit.local.stack.replicas import OperatorsView, ReplicaView

TOKEN_FILE = Path("state/automation/automation-token")


@dataclass
class Facts:
    provider: str = "aap"
    instance_namespace: str = "cloudkit-computeinstance"
    state_dir: Path = Path("state")
    kubeconfig: Path = Path("state/kubeconfig")
    apiserver_url: str = "https://127.0.0.1:6443"
    fulfillment_url: str = "https://127.0.0.1:9300"
    automation_url: str = "http://127.0.0.1:9200/api"
    automation_token_file: Path = TOKEN_FILE
    operator_running: bool = True
    metrics_url: str = "http://127.0.0.1:9101/metrics"
    health_url: str = "http://127.0.0.1:9102/healthz"
    notification_url: str = "http://127.0.0.1:9103/notifications"
    vm_boot_seconds: float = 5.0
    operator_replicas: int = 1
    replica_health_urls: dict[str, str] = field(
        default_factory=lambda: {"operator": "http://127.0.0.1:9102/healthz"}
    )
    leader: str | None = "operator"
    faults_seed: int | None = None


def panel(facts: Facts) -> str:
    out = io.StringIO()
    StackConsole(Console(file=out, width=240, color_system=None)).ready(facts)
    return out.getvalue()


def test_the_ready_panel_shows_where_everything_is() -> None:
    text = panel(Facts())
    for shown in (
        "namespace cloudkit-computeinstance",
        "https://127.0.0.1:6443",
        "http://127.0.0.1:9200/api/v2/",
        "http://127.0.0.1:9101/metrics",
        "http://127.0.0.1:9102/healthz",
        "http://127.0.0.1:9103/notifications",
        "boots and stops VMs in 5s",
        "https://127.0.0.1:9300",
        "cloudkit login --tenant acme --state-dir state",
    ):
        assert shown in text
    assert text.rstrip().endswith("export KUBECONFIG=state/kubeconfig")


def test_the_awx_cli_line_reads_the_token_from_its_file() -> None:
    text = panel(Facts())
    assert "CONTROLLER_HOST=http://127.0.0.1:9200 " in text
    assert f"CONTROLLER_OAUTH_TOKEN=$(cat {TOKEN_FILE}) awx jobs list" in text


def test_with_eda_the_panel_names_the_webhooks_and_no_awx_cli() -> None:
    eda = replace(Facts(), provider="eda", automation_url="http://127.0.0.1:5000")
    text = panel(eda)
    assert "http://127.0.0.1:5000/provision, /deprovision" in text
    assert "awx jobs list" not in text


def test_without_the_operator_the_panel_says_so() -> None:
    text = panel(replace(Facts(), operator_running=False))
    assert "not running (cloudkit.operator missing)" in text
    assert "/metrics" not in text


def test_the_panel_names_the_leader_and_the_standbys() -> None:
    assert re.search(r"operators +1 \(leader operator\)", panel(Facts()))
    two = replace(
        Facts(),
        operator_replicas=2,
        replica_health_urls={"operator": "h1", "operator-2": "h2"},
        leader="operator-2",
    )
    assert re.search(r"operators +2 \(leader operator-2; standby operator\)", panel(two))


def test_the_operators_panel_shows_each_replica_after_a_change() -> None:
    view = OperatorsView(
        lease="cloudkit-operator-system/cloudkit-operator-leader",
        leader="operator-2",
        replicas=(
            ReplicaView("operator", 4242, False, 3, "killed by SIGKILL", leader=False),
            ReplicaView("operator-2", 4343, True, 0, None, leader=True),
        ),
    )
    out = io.StringIO()
    StackConsole(Console(file=out, width=240, color_system=None)).operators(view)
    text = out.getvalue()
    assert "operator-2 leads" in text
    rows = {
        words[1]: words[2:]
        for words in (line.split() for line in text.splitlines())
        if {"4242", "4343"} & set(words)
    }
    assert rows["operator"][:5] == ["4242", "down,", "restarting", "3", "killed"], rows
    assert rows["operator-2"] == ["4343", "leader", "0", "-", "│"], rows


def test_the_ready_panel_says_when_faults_are_on_and_with_which_seed() -> None:
    assert "network faults" not in panel(Facts())
    text = panel(Facts(faults_seed=42))
    assert "network faults" in text and "ON, seed 42" in text
    assert "state/faults.json" in text
