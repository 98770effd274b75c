"""The end-to-end scenarios, run exactly as a user runs them: `cloudkit scenario ...`.

Without --kubeconfig the command starts its own local stack (API server, automation service,
VM simulator, operator as real processes) and stops it afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

CLOUDKIT = [sys.executable, "-m", "cloudkit.cli"]


def run_scenario(name: str, provider: str, tmp_path: Path, *extra: str) -> dict[str, object]:
    report = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            *CLOUDKIT,
            "scenario",
            name,
            "--provider",
            provider,
            "--json",
            str(report),
            "--state-dir",
            str(tmp_path / "stack"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert report.exists(), proc.stdout + proc.stderr
    data: dict[str, object] = json.loads(report.read_text())
    failed = [v for v in data["validations"] if not v["passed"]]  # type: ignore[attr-defined]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-4000:], proc.stderr[-4000:])
    return data


@pytest.mark.parametrize("provider", ["aap", "eda"])
def test_delete_during_provision(provider: str, tmp_path: Path) -> None:
    data = run_scenario("delete-during-provision", provider, tmp_path)
    names = {v["name"] for v in data["validations"]}  # type: ignore[attr-defined]
    # EDA jobs cannot be observed: their checks say so in their names.
    trail = {
        "aap": {
            "provision-job-terminal-with-matching-message",
            "single-deprovision-job-after-provision-terminal",
        },
        "eda": {"provision-job-succeeded-only-on-playbook-report", "at-most-one-deprovision-job"},
    }[provider]
    assert {
        "only-provision-job-before-delete",
        *trail,
        "resource-gone",
        "no-orphan-virtual-machine",
    } <= names


@pytest.mark.parametrize("provider", ["aap", "eda"])
def test_delete_during_provision_via_fulfillment(provider: str, tmp_path: Path) -> None:
    """Upstream's end-to-end test, through the API as a tenant: the order reaches STARTING,
    its deletion cancels the provision job, one deprovision job, and the record goes (404)
    with the resource; the tenant's view and the cluster's agree at the end."""
    data = run_scenario("delete-during-provision", provider, tmp_path, "--via", "fulfillment")
    assert data["via"] == "fulfillment"
    names = {v["name"] for v in data["validations"]}  # type: ignore[attr-defined]
    assert {
        "order-starting",
        "only-provision-job-before-delete",
        "deprovision-job-not-failed",
        "deprovision-job-id-unchanged",
        "resource-gone",
        "record-gone",
        "tenant-view-agrees-at-end",
        "no-orphan-virtual-machine",
    } <= names


@pytest.mark.parametrize("provider", ["aap", "eda"])
def test_lifecycle(provider: str, tmp_path: Path) -> None:
    data = run_scenario("lifecycle", provider, tmp_path)
    assert data["passed"] is True


@pytest.mark.parametrize("provider", ["aap", "eda"])
def test_restart(provider: str, tmp_path: Path) -> None:
    data = run_scenario("restart", provider, tmp_path)
    names = {v["name"] for v in data["validations"]}  # type: ignore[attr-defined]
    assert {
        "restart-in-progress-seen",
        "restart-never-failed",
        "vmi-recreated-after-request",
        "restart-completed",
        "ip-address-set",
        "resource-gone",
        "no-orphan-virtual-machine",
    } <= names


FAULTS_SEED = 180
"""A seed whose plan black-holes and resets the operator's connections to the API server and
loses the answers of, then black-holes, its calls to the automation service; the controller's
connections to the API and the API server are refused, black-holed, reset and lose answers
(DIR/faults.json lists the plans)."""
FAULT_SPAN_S = 30
"""The plans repeat this often, so each link meets its first two faults within 17 s of the
stack being ready (this seed: between ~0.4 s and ~17 s), well inside a delete-during-provision
of real playbook jobs whatever the machine's speed."""
LINKS = {
    "operator→apiserver",
    "operator→automation",
    "operator→fulfillment",
    "controller→fulfillment",
    "controller→apiserver",
}


def test_delete_during_provision_through_the_api_passes_on_its_first_attempt_with_faults(
    tmp_path: Path,
) -> None:
    """One run, no retry of the test, ordered and deleted through the API: every validation
    passes (the tenant's view included) while all five links between the parts fail by the
    seed's plan, and the report counts the scenario's own infrastructure errors apart from
    its validations."""
    data = run_scenario(
        "delete-during-provision",
        "aap",
        tmp_path,
        "--via",
        "fulfillment",
        "--faults",
        str(FAULTS_SEED),
        "--fault-span",
        str(FAULT_SPAN_S),
    )
    assert data["via"] == "fulfillment"
    names = {v["name"] for v in data["validations"]}  # type: ignore[attr-defined]
    assert {"order-starting", "record-gone", "tenant-view-agrees-at-end"} <= names
    infrastructure = data["infrastructure"]
    assert isinstance(infrastructure, dict)
    assert set(infrastructure) >= {"errors_seen", "retried", "budget_spent"}
    faults = json.loads((tmp_path / "stack" / "faults.json").read_text())
    assert faults["seed"] == FAULTS_SEED
    struck = {link: entry["faults_applied"] for link, entry in faults["links"].items()}
    assert set(struck) == LINKS
    assert all(count >= 2 for count in struck.values()), struck
