"""No credential in any log, status or event after a whole lifecycle on the full stack.

Secrets: the automation service's tokens, the API server's token, the operator's notification
token. Searched: every file under <state_dir>/logs/ (every child's output), every Event in the
cluster, every recorded version of the instance's status, and the automation service's job
list (tracebacks and explanations are shown to people too). The search is proven able to find
a token first (in the kubeconfig, where it belongs), so a clean result means something.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from resilience_lab import Lab, describe, open_lab, phase

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

VM_BOOT_SECONDS = 1.0
LIFECYCLE_TIMEOUT_S = 240.0


def leaks(text: str, secrets: dict[str, str], where: str) -> list[str]:
    return [f"{what} found in {where}" for what, value in secrets.items() if value in text]


async def run_lifecycle(lab: Lab, name: str) -> None:
    rec = lab.recorder
    await lab.create(name)
    await rec.wait_for(
        lambda: phase(rec.latest(name)) == "Ready", within=LIFECYCLE_TIMEOUT_S, what="Ready"
    )
    await lab.delete(name)
    await rec.wait_for(lambda: name in rec.gone, within=LIFECYCLE_TIMEOUT_S, what="gone")


async def test_no_token_in_logs_status_or_events(tmp_path: Path) -> None:
    name = "secret-keeper"
    async with open_lab(tmp_path / "stack", vm_boot_seconds=VM_BOOT_SECONDS) as lab:
        secrets = lab.secrets()
        assert all(len(value) >= 16 for value in secrets.values()), "a credential is missing"
        # The search can find a token where it is supposed to be.
        assert leaks(lab.handle.kubeconfig.read_text(), secrets, "kubeconfig")

        started = time.monotonic()
        try:
            await run_lifecycle(lab, name)
        except AssertionError as error:
            raise AssertionError(f"{error}; last {describe(lab.recorder.latest(name))}") from None
        print(f"\nlifecycle in {time.monotonic() - started:.1f}s")

        found: list[str] = []
        for event in await lab.events():
            found += leaks(json.dumps(event), secrets, f"event {event['metadata']['name']}")
        versions = lab.recorder.versions[name]
        assert versions, "no version of the instance was recorded"
        for obj in versions:
            rv = obj["metadata"]["resourceVersion"]
            found += leaks(json.dumps(obj.get("status") or {}), secrets, f"status at rv {rv}")
            found += leaks(json.dumps(obj["metadata"]), secrets, f"metadata at rv {rv}")
        jobs_text = json.dumps([job.__dict__ for job in await lab.automation.jobs()])
        found += leaks(jobs_text, secrets, "the automation job list")
        logs_dir = lab.handle.state_dir / "logs"
        # Logs are read while the stack still runs and again after it stopped (final lines).
    log_files = sorted(p for p in logs_dir.rglob("*") if p.is_file())
    assert {p.name for p in log_files} >= {"apiserver.log", "automation.log", "operator.log"}
    for path in log_files:
        found += leaks(path.read_text(errors="replace"), secrets, f"log {path.name}")
    assert not found, "\n".join(found)
