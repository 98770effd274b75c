"""The `restart` scenario: a restart request (`spec.restartRequestedAt`) restarts the VM for real.

Create → Ready → request a restart (a whole-second RFC 3339 time, as `date -u +%FT%TZ` gives)
→ the instance shows RestartInProgress while KubeVirt re-creates the VirtualMachineInstance
(the operator deletes it) → `lastRestartedAt` is the request, both restart conditions are gone,
phase Ready, `ipAddress` the new VMI's → delete → gone, no VM left. Every version of the
instance is recorded, so "RestartInProgress was shown" is checked on every write.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.runner import Recorder, Scenario, ScenarioError, vms_left, wait_for
from cloudkit.scenarios.validations import Report


def restart(scn: Scenario, *, timeout: float = 180.0) -> Report:
    report = Report("restart", scn.provider, f"{scn.namespace}/{scn.name}")
    t0 = time.monotonic()
    rec = scn.create()
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
    report.validations.append(v.no_orphan_vm(vms_left(scn), f"{names.VM_INSTANCE_LABEL}"))
    report.timings["total_s"] = time.monotonic() - t0
    return report


def _phase_ready(rec: Recorder) -> bool:
    snap = rec.latest()
    return bool(snap and snap.status.get("phase") == "Ready")
