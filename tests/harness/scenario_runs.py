"""`cloudkit scenario` run as a user runs it, against a running `cloudkit up` or on a stack of
its own, its JSON report read back; and the validations each scenario must have reported.

A stack serves several scenarios: each creates its own uniquely named instance (through the
resource, or as a fresh tenant through the fulfillment API), so one does not see another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.harness.up import Up

CLOUDKIT = [sys.executable, "-m", "cloudkit.cli"]
SCENARIO_TIMEOUT_S = 400.0

# EDA jobs cannot be observed: their checks say so in their names.
DELETE_DURING_PROVISION_TRAIL = {
    "aap": {
        "provision-job-terminal-with-matching-message",
        "single-deprovision-job-after-provision-terminal",
    },
    "eda": {"provision-job-succeeded-only-on-playbook-report", "at-most-one-deprovision-job"},
}
RESTART = {
    "restart-in-progress-seen",
    "restart-never-failed",
    "vmi-recreated-after-request",
    "restart-completed",
    "ip-address-set",
    "resource-gone",
    "no-orphan-virtual-machine",
}
THROUGH_THE_API = {
    "order-starting",
    "only-provision-job-before-delete",
    "deprovision-job-not-failed",
    "deprovision-job-id-unchanged",
    "resource-gone",
    "record-gone",
    "tenant-view-agrees-at-end",
    "no-orphan-virtual-machine",
}


def run_scenario(
    name: str,
    provider: str,
    out: Path,
    *extra: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """`cloudkit scenario NAME --provider PROVIDER --json OUT/NAME.json EXTRA…`; it must exit 0
    with every validation passed. Returns the report."""
    report = out / f"{name}.json"
    proc = subprocess.run(
        [*CLOUDKIT, "scenario", name, "--provider", provider, "--json", str(report), *extra],
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        env=dict(env) if env is not None else None,
    )
    assert report.exists(), proc.stdout + proc.stderr
    data: dict[str, object] = json.loads(report.read_text())
    failed = [v for v in data["validations"] if not v["passed"]]  # type: ignore[attr-defined]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-4000:], proc.stderr[-4000:])
    return data


def validation_names(report: Mapping[str, object]) -> set[str]:
    return {v["name"] for v in report["validations"]}  # type: ignore[attr-defined]


def shared_stack(
    factory: pytest.TempPathFactory, provider: str, options: Sequence[str] = ()
) -> Iterator[Up]:
    """A module's `cloudkit up` (body of a module-scoped fixture); stopped with Ctrl-C."""
    base = factory.mktemp(f"up-{provider}")
    up = Up(base / "state", base / "up.log", provider, options=options)
    try:
        up.wait_ready()
        yield up
    finally:
        up.stop()


def on_stack(
    up: Up, name: str, out: Path, *extra: str, env: Mapping[str, str] | None = None
) -> dict[str, object]:
    """A scenario against the running stack (`--kubeconfig`), which must still run after it."""
    report = run_scenario(
        name, up.provider, out, "--kubeconfig", str(up.kubeconfig), *extra, env=env
    )
    assert up.process.poll() is None, f"cloudkit up exited:\n{up.output()[-3000:]}"
    return report


def logged_in_tenant(up: Up, config: Path) -> dict[str, str]:
    """`cloudkit login --tenant …` to the stack, as a fresh tenant whose login lives in
    `config` (CLOUDKIT_CONFIG); the environment of that person's shell."""
    env = {**up.env, "CLOUDKIT_CONFIG": str(config)}
    tenant = f"scenario-{uuid.uuid4().hex[:6]}"
    login = subprocess.run(
        [*CLOUDKIT, "login", "--tenant", tenant, "--state-dir", str(up.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert login.returncode == 0, login.stdout + login.stderr
    return env


def lifecycle(up: Up, out: Path) -> None:
    report = on_stack(up, "lifecycle", out)
    assert report["passed"] is True


def delete_during_provision(up: Up, out: Path) -> None:
    report = on_stack(up, "delete-during-provision", out)
    assert {
        "only-provision-job-before-delete",
        *DELETE_DURING_PROVISION_TRAIL[up.provider],
        "resource-gone",
        "no-orphan-virtual-machine",
    } <= validation_names(report)


def delete_during_provision_via_fulfillment(up: Up, out: Path) -> None:
    """Upstream's end-to-end test, through the API as a tenant (`cloudkit login`): the order
    reaches STARTING, its deletion cancels the provision job, one deprovision job, and the
    record goes (404) with the resource; the tenant's view and the cluster's agree at the end."""
    env = logged_in_tenant(up, out / "cloudkit.json")
    report = on_stack(up, "delete-during-provision", out, "--via", "fulfillment", env=env)
    assert report["via"] == "fulfillment"
    assert THROUGH_THE_API | DELETE_DURING_PROVISION_TRAIL[up.provider] <= validation_names(report)


def restart(up: Up, out: Path) -> None:
    report = on_stack(up, "restart", out)
    assert validation_names(report) >= RESTART
