"""The automation service stopped for OUTAGE_S mid-provisioning, then started again.

One instance is provisioning when the service stops (the stack's own stop: SIGTERM, which
cancels its running jobs, as a controller restart ends them); a second instance is created
during the outage, so its launch cannot reach the service. While the service is down both
statuses say why (a "Failed to ..." message naming the unreachable service). The service comes
back on the same state directory and port; then nothing is lost (every job id any status showed
is a job the service ran, with the real terminal state recorded), the interrupted provisioning
is retried, the launch attempted during the outage happens exactly once, and both lifecycles
complete with one deprovision job each and no VM left.

The operator runs with a short retry back-off (CLOUDKIT_RETRY_BACKOFF_MIN): the default of
2 minutes would only make the test longer, not different.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.scenarios import validations as v
from cloudkit.scenarios.validations import Validation
from tests.harness.checks import (
    all_jobs_terminal,
    exactly_one_deprovision_job,
    failures,
    no_overlapping_jobs,
    one_provision_job_per_correlation_id,
    status_agrees_with_automation,
    trace_lines,
)
from tests.harness.stack_lab import describe, job_of, open_lab, phase, status_of

pytestmark = [pytest.mark.stack, pytest.mark.soak, pytest.mark.timeout(900)]

OUTAGE_S = 30.0
"""How long the automation service stays down (the issue's 30 s)."""
VM_BOOT_SECONDS = 4.0
OPERATOR_ENV = {"CLOUDKIT_RETRY_BACKOFF_MIN": "2s", "CLOUDKIT_RETRY_BACKOFF_MAX": "10s"}
STEP_TIMEOUT_S = 300.0
WHY = re.compile(
    r"Failed to (get job status|trigger provisioning|look up launched job|cancel job): "
    r".*(unavailable|refused|connect)",
    re.IGNORECASE,
)


def job_messages(obj: dict[str, Any] | None) -> list[str]:
    status = status_of(obj)
    messages = [str(job_of(obj, kind).get("message") or "") for kind in ("provision",)]
    messages += [str(entry.get("message") or "") for entry in status.get("jobs") or []]
    return messages


def says_why(obj: dict[str, Any] | None) -> str | None:
    return next((m for m in job_messages(obj) if WHY.search(m)), None)


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_automation_outage_mid_provisioning(tmp_path: Path) -> None:
    first, second = "outage-running", "outage-created"
    async with open_lab(
        tmp_path / "stack",
        vm_boot_seconds=VM_BOOT_SECONDS,
        env=OPERATOR_ENV,
        with_fulfillment=False,
    ) as lab:
        rec = lab.recorder
        await lab.create(first)
        await rec.wait_for(
            lambda: job_of(rec.latest(first), "provision").get("state") == "Running",
            within=STEP_TIMEOUT_S,
            what=f"{first}: a running provision job",
        )
        interrupted = str(job_of(rec.latest(first), "provision")["id"])

        await lab.stop_child("automation")
        down_at = time.monotonic()
        assert await refuses_connections(lab.automation_port()), "the service still listens"
        await lab.create(second)
        try:
            await rec.wait_for(
                lambda: bool(says_why(rec.latest(first)) and says_why(rec.latest(second))),
                within=OUTAGE_S,
                what="both statuses to say the automation service is unreachable",
            )
        except AssertionError as error:
            raise AssertionError(
                f"{error}\n{first}: {describe(rec.latest(first))}\n"
                f"{second}: {describe(rec.latest(second))}"
            ) from None
        while_down = {name: says_why(rec.latest(name)) for name in (first, second)}
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage
        await lab.restart_automation()
        outage = time.monotonic() - down_at

        for name in (first, second):
            try:
                await rec.wait_for(
                    functools.partial(lambda n: phase(rec.latest(n)) == "Ready", name),
                    within=STEP_TIMEOUT_S,
                    what=f"{name} Ready after the outage",
                )
            except AssertionError as error:
                raise AssertionError(f"{error}; last {describe(rec.latest(name))}") from None
        for name in (first, second):
            await lab.delete(name)
        for name in (first, second):
            await rec.wait_for(
                functools.partial(lambda n: n in rec.gone, name),
                within=STEP_TIMEOUT_S,
                what=f"{name} gone",
            )

        jobs = await lab.automation.jobs()
        named: dict[str, list[Validation]] = {}
        for name in (first, second):
            mine = [j for j in jobs if j.instance == name]
            provisions = [j for j in mine if j.kind == "provision"]
            named[name] = [
                one_provision_job_per_correlation_id(mine),
                exactly_one_deprovision_job(mine),
                no_overlapping_jobs(mine),
                all_jobs_terminal(mine),
                status_agrees_with_automation(rec.versions[name], mine),
                v.single_deprovision_after_provision_terminal(rec.snapshots(name)),
                v.no_orphan_vm(await lab.vms(name), f"{names.VM_INSTANCE_LABEL}={name}"),
            ]
            if name == first:
                ended = next((j for j in provisions if j.id == interrupted), None)
                named[name].append(
                    Validation(
                        "interrupted-job-kept-and-retried",
                        ended is not None and ended.terminal and len(provisions) == 2,
                        f"provision jobs {[(j.id, j.status) for j in provisions]}",
                    )
                )
            else:
                named[name].append(
                    Validation(
                        "launch-during-outage-happens-once",
                        len(provisions) == 1,
                        f"provision jobs {[(j.id, j.status) for j in provisions]}",
                    )
                )
        secrets = lab.secrets()
        leaked = [
            f"{what} in a status of {name}"
            for name in (first, second)
            for obj in rec.versions[name]
            for what, value in secrets.items()
            if value in json.dumps(obj.get("status") or {})
        ]

    print(f"\noutage {outage:.1f}s; messages while down: {while_down}")
    problems = failures(named) + leaked
    if problems:
        for name in (first, second):
            print(f"  {name}:", *trace_lines(rec.versions[name]), sep="\n")
    assert not problems, "\n".join(problems)
