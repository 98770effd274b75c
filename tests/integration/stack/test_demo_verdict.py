"""The demo's verdict on recorded histories (pure: no stack needed)."""

from __future__ import annotations

from typing import Any

from cloudkit.local.demo import DOOMED, KEEP, RUNNING, Observed, verdict


def version(
    name: str,
    phase: str,
    provision: tuple[str, str] | None = None,
    deprovision: tuple[str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "ipAddress": f"10.0.0.{len(name)}"}
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
    for name in KEEP:  # the tenant's view, as the API answers it
        ip = f"10.0.0.{len(name)}"
        seen.orders[name] = {"status": {"state": RUNNING, "internal_ip_address": ip}}
    seen.orders_gone.add(DOOMED)
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


def test_an_order_behind_its_instance_fails_the_demo() -> None:
    seen = good_run()
    seen.orders[KEEP[0]]["status"]["state"] = "COMPUTE_INSTANCE_STATE_STARTING"
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == [f"{KEEP[0]}: order RUNNING with the instance's IP (tenant's view)"]


def test_an_order_without_the_instances_ip_fails_the_demo() -> None:
    seen = good_run()
    seen.orders[KEEP[1]]["status"]["internal_ip_address"] = "10.9.9.9"
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == [f"{KEEP[1]}: order RUNNING with the instance's IP (tenant's view)"]


def test_a_deleted_order_still_answering_fails_the_demo() -> None:
    seen = good_run()
    seen.orders_gone.discard(DOOMED)
    unseen = [c.name for c in verdict(seen) if not c.ok]  # never read: not proven gone
    seen.orders[DOOMED] = {"status": {"state": "COMPUTE_INSTANCE_STATE_DELETING"}}
    failed = [c.name for c in verdict(seen) if not c.ok]
    assert failed == unseen == [f"{DOOMED}: order gone, 404 (tenant's view)"]


def test_instances_and_vms_are_known_by_their_order() -> None:
    """The controller names instances itself (vm-…) and labels them with the order's id."""
    seen = Observed(order_names={"id-1": DOOMED})
    instance = version("vm-x7k2q", "Progressing")
    instance["metadata"]["labels"] = {"cloudkit.openshift.io/computeinstance-uuid": "id-1"}
    seen.record("ADDED", instance)
    assert DOOMED in seen.instances and seen.instance_names == {"vm-x7k2q": DOOMED}


def test_the_live_table_shows_both_views_whole_on_an_80_column_terminal() -> None:
    import io

    from rich.console import Console

    from cloudkit.local.demo import _table

    seen = good_run()
    seen.order_names = {"f876a1b2-aaaa": KEEP[0], "fb7d0c1d-bbbb": KEEP[1], "c532e0f9-cccc": DOOMED}
    for name in KEEP:  # as wide as a real run's
        seen.orders[name]["metadata"] = {"tenant": "demo"}
        seen.orders[name]["status"]["internal_ip_address"] = "10.200.188.125"
        seen.instances[name]["metadata"]["name"] = "vm-rx7k2"
        seen.instances[name]["status"]["provisionJob"]["message"] = "successful"
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(_table(seen, 12.3, "done"))
    text = out.getvalue()
    assert "…" not in text, text
    for shown in ("f876a1b2", "demo", "RUNNING", "10.200.188.125", "gone (404)", "#1 Succeeded"):
        assert shown in text, text
