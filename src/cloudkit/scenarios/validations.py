"""Named validations of an end-to-end scenario, as pure functions over a recorded trace.

A trace is every version of the ComputeInstance the scenario saw (one per write, from a watch),
plus what it found in the cluster at the end. Keeping the checks pure means they are unit-tested
on hand-made traces and mean the same against the local stack and a real cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TERMINAL = {"Succeeded", "Failed", "Canceled"}
NON_TERMINAL = {"Pending", "Waiting", "Running", "Unknown"}
# The message AAP direct writes with each terminal state (the raw AWX status word first).
MESSAGE_PREFIX_FOR_STATE = {
    "Canceled": ("canceled",),
    "Failed": ("failed", "error"),
    "Succeeded": ("successful",),
}


@dataclass(frozen=True)
class Snapshot:
    """One observed version of the instance (a watch event), seconds since the scenario began."""

    at: float
    resource_version: str
    deleting: bool
    status: dict[str, Any]
    finalizers: tuple[str, ...] = ()

    def job(self, job_type: str) -> dict[str, Any] | None:
        key = "provisionJob" if job_type == "provision" else "deprovisionJob"
        value = self.status.get(key)
        return value if isinstance(value, dict) else None

    def job_ids(self, job_type: str) -> set[str]:
        ids = {
            str(j.get("jobID", ""))
            for j in self.status.get("jobs", [])
            if isinstance(j, dict) and j.get("type") == job_type and j.get("jobID")
        }
        current = self.job(job_type)
        if current and current.get("id"):
            ids.add(str(current["id"]))
        return ids


@dataclass
class Validation:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    scenario: str
    provider: str
    instance: str
    validations: list[Validation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.validations) and all(v.passed for v in self.validations)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.validations.append(Validation(name, passed, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "provider": self.provider,
            "instance": self.instance,
            "passed": self.passed,
            "validations": [asdict(v) for v in self.validations],
            "timings": self.timings,
        }


def _fmt(job: dict[str, Any] | None) -> str:
    if not job:
        return "none"
    return f"{job.get('id') or '-'} {job.get('state')} {job.get('message')!r}"


def only_provision_job_before_delete(before: Snapshot) -> Validation:
    """Before deletion: a launched, non-terminal provision job and no deprovision job."""
    prov = before.job("provision")
    ok = (
        prov is not None
        and bool(prov.get("id"))
        and prov.get("state") in NON_TERMINAL
        and not before.job_ids("deprovision")
        and before.job("deprovision") is None
    )
    return Validation(
        "only-provision-job-before-delete",
        ok,
        f"provision {_fmt(prov)}; deprovision {_fmt(before.job('deprovision'))}",
    )


def message_matches_state(job: dict[str, Any]) -> bool:
    prefixes = MESSAGE_PREFIX_FOR_STATE.get(str(job.get("state")))
    if prefixes is None:
        return True
    return str(job.get("message", "")).lower().startswith(prefixes)


def provision_terminal_with_matching_message(trace: list[Snapshot], provider: str) -> Validation:
    """The provision job ends terminal and its message is the one of that terminal state."""
    name = "provision-job-terminal-with-matching-message"
    last = next((s.job("provision") for s in reversed(trace) if s.job("provision")), None)
    if last is None:
        return Validation(name, False, "no provision job observed")
    if provider == "eda":
        ok = last.get("state") in {"Unknown", "Running", *TERMINAL}
        return Validation(name, ok, f"EDA cannot observe the job: last {_fmt(last)}")
    mismatched = [
        s for s in trace if (j := s.job("provision")) is not None and not message_matches_state(j)
    ]
    ok = last.get("state") in TERMINAL and not mismatched
    detail = f"last {_fmt(last)}"
    if mismatched:
        detail += f"; state/message mismatch at rv {mismatched[0].resource_version}: " + _fmt(
            mismatched[0].job("provision")
        )
    return Validation(name, ok, detail)


def single_deprovision_after_provision_terminal(trace: list[Snapshot], provider: str) -> Validation:
    """Exactly one deprovision job, and every version that shows it shows the provision ended."""
    name = "single-deprovision-job-after-provision-terminal"
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    first = next((s for s in trace if s.job("deprovision") is not None), None)
    if provider == "eda":
        ok = len(ids) <= 1
        return Validation(name, ok, f"deprovision job ids {sorted(ids)} (EDA may skip)")
    if first is None:
        return Validation(name, False, "no deprovision job observed")
    early = [
        s
        for s in trace
        if s.job("deprovision") is not None
        and (s.job("provision") or {}).get("state") not in TERMINAL
    ]
    ok = len(ids) == 1 and not early
    detail = (
        f"deprovision job ids {sorted(ids)}; "
        f"first seen with provision {_fmt(first.job('provision'))}"
    )
    if early:
        detail += f"; provision not terminal at rv {early[0].resource_version}"
    return Validation(name, ok, detail)


def phase_deleting_after_delete(trace: list[Snapshot]) -> Validation:
    deleting = [s for s in trace if s.deleting]
    ok = bool(deleting) and all(
        s.status.get("phase") == "Deleting" for s in deleting if s is not deleting[0]
    )
    return Validation(
        "phase-deleting-after-delete",
        ok,
        f"{len(deleting)} versions while deleting; phases "
        f"{sorted({str(s.status.get('phase')) for s in deleting})}",
    )


def resource_gone(gone: bool, waited_s: float) -> Validation:
    return Validation(
        "resource-gone",
        gone,
        f"NotFound after {waited_s:.1f}s" if gone else f"still present after {waited_s:.1f}s",
    )


def no_orphan_vm(vms: list[str], label: str) -> Validation:
    return Validation(
        "no-orphan-virtual-machine",
        not vms,
        f"no VirtualMachine labelled {label}" if not vms else f"left behind: {', '.join(vms)}",
    )
