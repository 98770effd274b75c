"""The `restart` scenario: a restart request (`spec.restartRequestedAt`) restarts the VM for real.

Create → Ready → request a restart (a whole-second RFC 3339 time, as `date -u +%FT%TZ` gives)
→ the instance shows RestartInProgress while KubeVirt re-creates the VirtualMachineInstance
(the operator deletes it) → `lastRestartedAt` is the request, both restart conditions are gone,
phase Ready, `ipAddress` the new VMI's → delete → gone, no VM left. Every version of the
instance is recorded, so "RestartInProgress was shown" is checked on every write.

Through the API (`--via fulfillment`) the tenant orders, asks for the restart with the order's
`restart_requested_at` and deletes the order; the resource is still watched for the trail, and
the tenant must see the restart (`last_restarted_at`) and, at the end, the record gone.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.runner import (
    Recorder,
    Scenario,
    ScenarioError,
    check_record_gone,
    vms_left,
    wait_for,
)
from cloudkit.scenarios.validations import Report, Validation, parse_time


def restart(scn: Scenario, *, timeout: float = 180.0) -> Report:
    report = Report("restart", scn.provider, "", via=scn.via)
    t0 = time.monotonic()
    rec = scn.create()
    report.instance = f"{scn.namespace}/{scn.name}"
    seen_by_tenant: Validation | None = None
    try:
        report.timings["create_to_ready_s"] = wait_for(
            lambda: _phase_ready(rec), timeout=timeout, what="phase Ready"
        )
        vms = scn.labelled_vms()
        if len(vms) != 1:
            raise ScenarioError(f"expected one VirtualMachine at Ready, found {vms or 'none'}")
        vm_namespace, vm_name = vms[0].split("/", 1)
        before = scn.vm_instance(vm_namespace, vm_name)
        requested = datetime.now(UTC).replace(microsecond=0)
        seen_before_request = len(rec.snapshots())
        scn.request_restart(requested)
        asked = time.monotonic()
        with contextlib.suppress(ScenarioError):  # a restart that never ends fails below
            wait_for(lambda: v.restarted(rec.latest(), requested), timeout=timeout, what="restart")
        report.timings["request_to_restarted_s"] = time.monotonic() - asked
        if scn.orders is not None:
            seen_by_tenant = _tenant_sees_restart(scn, requested, timeout)
        after = scn.vm_instance(vm_namespace, vm_name)
        trace = rec.snapshots()
        final = rec.latest()
        scn.delete()
        deleted_at = time.monotonic()
        gone = rec.deleted.wait(timeout) or not scn.exists()
        report.timings["delete_to_gone_s"] = time.monotonic() - deleted_at
    finally:
        rec.stop()
    during = trace[seen_before_request:]
    report.validations.append(v.restart_in_progress_seen(during))
    report.validations.append(v.no_restart_failure(during))
    report.validations.append(v.instance_recreated(before, after, requested))
    report.validations.append(v.restart_completed(final, requested))
    report.validations.append(v.ip_address_reported(final, after))
    report.validations.append(v.resource_gone(gone, report.timings["delete_to_gone_s"]))
    if seen_by_tenant is not None:
        report.validations.append(seen_by_tenant)
        check_record_gone(scn, report, timeout)
    report.validations.append(v.no_orphan_vm(vms_left(scn), f"{names.VM_INSTANCE_LABEL}"))
    report.timings["total_s"] = time.monotonic() - t0
    return report


def _phase_ready(rec: Recorder) -> bool:
    snap = rec.latest()
    return bool(snap and snap.status.get("phase") == "Ready")


def _tenant_sees_restart(scn: Scenario, requested: datetime, timeout: float) -> Validation:
    """Wait (bounded) until the order says `last_restarted_at` = the request (a timeout is a
    failed validation, not an error)."""
    started = time.monotonic()
    seen: dict[str, Any] = {"order": None}

    def shown() -> bool:
        seen["order"] = scn.order()
        status = (seen["order"] or {}).get("status") or {}
        return parse_time(status.get("last_restarted_at")) == requested

    with contextlib.suppress(ScenarioError):
        wait_for(shown, timeout=timeout, what="the restart in the order", interval=0.2)
    return v.restart_seen_by_tenant(seen["order"], requested, time.monotonic() - started)
