"""The demo's verdict on recorded histories (pure: no stack needed)."""

from __future__ import annotations

from typing import Any

from cloudkit.local.demo import DOOMED, KEEP, Observed, verdict


def version(
    name: str,
    phase: str,
    provision: tuple[str, str] | None = None,
    deprovision: tuple[str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if provision:
        status["provisionJob"] = {"id": provision[0], "state": provision[1]}
    if deprovision:
        status["deprovisionJob"] = {"id": deprovision[0], "state": deprovision[1]}
    return {"metadata": {"name": name}, "status": status}


def good_run() -> Observed:
    seen = Observed()
    for name in KEEP:
        seen.record("ADDED", version(name, "Progressing", ("1", "Running")))
        seen.record("MODIFIED", version(name, "Ready", ("1", "Succeeded")))
    seen.record("ADDED", version(DOOMED, "Progressing", ("3", "Running")))
    seen.record("MODIFIED", version(DOOMED, "Deleting", ("3", "Running")))
    seen.record("MODIFIED", version(DOOMED, "Deleting", ("3", "Canceled"), ("4", "Pending")))
    seen.record("MODIFIED", version(DOOMED, "Deleting", ("3", "Canceled"), ("4", "Succeeded")))
    seen.record("DELETED", version(DOOMED, "Deleting", ("3", "Canceled"), ("4", "Succeeded")))
    return seen


def test_a_good_run_passes_every_check() -> None:
    checks = verdict(good_run())
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]


def test_a_second_deprovision_job_fails_the_demo() -> None:
    seen = good_run()
    seen.history[DOOMED].append(version(DOOMED, "Deleting", ("3", "Canceled"), ("5", "Pending")))
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == [f"{DOOMED}: exactly one deprovision job"]


def test_a_deprovision_job_recorded_beside_a_running_provision_job_fails_the_demo() -> None:
    seen = good_run()
    seen.history[DOOMED].insert(2, version(DOOMED, "Deleting", ("3", "Running"), ("4", "Pending")))
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == [f"{DOOMED}: provision job terminal before the deprovision job was recorded"]


def test_an_orphan_vm_fails_the_demo() -> None:
    seen = good_run()
    seen.vms[DOOMED] = {"metadata": {"name": DOOMED}}
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == [f"{DOOMED}: no VM left behind"]
