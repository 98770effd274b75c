"""Checks shared by the resilience proofs: the automation service as a second witness.

The recorded instance versions say what the operator wrote; the automation service's job list
says what it actually launched. Each function returns named validations (the scenario's type),
so a failing proof prints every violated rule with its evidence, not just the first.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from cloudkit.scenarios.validations import Validation
from tests.harness.stack_lab import (
    STATE_OF_STATUS,
    AutomationJob,
    recorded_job_ids,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def exactly_one_deprovision_job(jobs: list[AutomationJob]) -> Validation:
    deprovisions = [j for j in jobs if j.kind == "deprovision"]
    ok = len(deprovisions) == 1 and deprovisions[0].status == "successful"
    return Validation(
        "automation-exactly-one-successful-deprovision-job",
        ok,
        f"deprovision jobs {[(j.id, j.status) for j in deprovisions]}",
    )


def one_provision_job_per_correlation_id(jobs: list[AutomationJob]) -> Validation:
    by_cid: dict[str, list[str]] = defaultdict(list)
    for job in jobs:
        if job.kind == "provision":
            by_cid[job.correlation_id].append(job.id)
    duplicated = {cid: ids for cid, ids in by_cid.items() if len(ids) > 1 or not cid}
    return Validation(
        "automation-one-provision-job-per-correlation-id",
        not duplicated,
        f"provision jobs by correlation id {dict(by_cid)}",
    )


def no_overlapping_jobs(jobs: list[AutomationJob]) -> Validation:
    """Invariant 1 by the automation service's own clock: each job of an instance starts
    (is created) only after the previous one finished."""
    ordered = sorted(jobs, key=lambda j: (parse_time(j.created) or EPOCH, int(j.id)))
    overlaps = []
    for earlier, later in itertools.pairwise(ordered):
        ended = parse_time(earlier.finished)
        started = parse_time(later.created)
        if ended is None or started is None or started < ended:
            overlaps.append(
                f"{later.kind} {later.id} created {later.created} while {earlier.kind} "
                f"{earlier.id} ({earlier.status}) finished {earlier.finished}"
            )
    return Validation(
        "automation-no-overlapping-jobs",
        not overlaps,
        "; ".join(overlaps) or f"{len(ordered)} jobs, one after another",
    )


def all_jobs_terminal(jobs: list[AutomationJob]) -> Validation:
    active = [(j.id, j.kind, j.status) for j in jobs if not j.terminal]
    return Validation("automation-all-jobs-terminal", not active, f"still active: {active}")


def status_agrees_with_automation(
    versions: list[dict[str, Any]], jobs: list[AutomationJob]
) -> Validation:
    """Nothing lost, nothing invented: the job ids the status ever showed are exactly the jobs
    the automation service ran for the instance, and the last recorded state of each current
    job is the real terminal state of that job."""
    problems = []
    for kind in ("provision", "deprovision"):
        recorded = recorded_job_ids(versions, kind)
        launched = {j.id for j in jobs if j.kind == kind}
        if recorded != launched:
            problems.append(
                f"{kind}: status showed {sorted(recorded)}, automation ran {sorted(launched)}"
            )
    by_id = {j.id: j for j in jobs}
    last = versions[-1] if versions else {}
    for entry in (last.get("status") or {}).get("jobs") or []:
        job = by_id.get(str(entry.get("jobID") or ""))
        if job is None or not job.terminal:
            continue
        expected = STATE_OF_STATUS.get(job.status)
        if entry.get("state") != expected:
            problems.append(
                f"{entry.get('type')} job {job.id} is {job.status} in automation but "
                f"{entry.get('state')}/{entry.get('message')!r} in the last status"
            )
    return Validation("status-agrees-with-automation", not problems, "; ".join(problems) or "ok")


def failures(named: dict[str, list[Validation]]) -> list[str]:
    return [
        f"{name}: {v.name}: {v.detail}"
        for name, validations in named.items()
        for v in validations
        if not v.passed
    ]


def trace_lines(versions: list[dict[str, Any]]) -> list[str]:
    """Every recorded version in one line each: resourceVersion, phase, jobs (for reports)."""
    lines = []
    for obj in versions:
        status = obj.get("status") or {}
        history = ", ".join(
            f"{e.get('type')}:{e.get('jobID') or '-'}:{e.get('state')}:{e.get('message')!r}"
            for e in status.get("jobs") or []
        )
        deleting = "D" if (obj.get("metadata") or {}).get("deletionTimestamp") else " "
        lines.append(
            f"    rv={obj['metadata'].get('resourceVersion')} {deleting} "
            f"{status.get('phase') or '-'} [{history}]"
        )
    return lines
