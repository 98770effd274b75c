"""Named validations of an end-to-end scenario, as pure functions over a recorded trace.

A trace is every version of the ComputeInstance the scenario saw (one per write, from a watch),
plus what it found in the cluster at the end. Keeping the checks pure means they are unit-tested
on hand-made traces and mean the same against the local stack and a real cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudkit.api.jobs import TERMINAL_STATES, JobState

# The states as the status spells them; what "terminal" means is defined once, in cloudkit.api.
TERMINAL = {state.value for state in TERMINAL_STATES}
NON_TERMINAL = {state.value for state in JobState} - TERMINAL
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
    infrastructure: dict[str, Any] = field(default_factory=dict)
    """Infrastructure errors seen and retried (scenarios.infrastructure), apart from the
    validations: they say how unsteady the way to the cluster was, not how the product did."""
    via: str = "kubernetes"
    """How the instance was ordered: `kubernetes` (the resource) or `fulfillment` (the API)."""

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
            "via": self.via,
            "passed": self.passed,
            "validations": [asdict(v) for v in self.validations],
            "timings": self.timings,
            "infrastructure": self.infrastructure,
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


def provision_terminal_with_matching_message(trace: list[Snapshot]) -> Validation:
    """AAP direct: the provision job ends terminal and its message is the one AAP gives that
    terminal state (EDA cannot observe its jobs: provision_succeeded_only_on_playbook_report)."""
    name = "provision-job-terminal-with-matching-message"
    last = next((s.job("provision") for s in reversed(trace) if s.job("provision")), None)
    if last is None:
        return Validation(name, False, "no provision job observed")
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


def reported_by_playbook(snap: Snapshot, job: dict[str, Any]) -> bool:
    """Did the playbook report this job's configuration applied (its annotation, which the
    operator copies to status.reconciledConfigVersion in the same write)?"""
    version = job.get("configVersion")
    return bool(version) and snap.status.get("reconciledConfigVersion") == version


def provision_succeeded_only_on_playbook_report(trace: list[Snapshot]) -> Validation:
    """EDA: the operator cannot observe or cancel a job, so a provision job never shows Failed
    or Canceled, and shows Succeeded only in a version where the playbook reported its
    configuration applied; otherwise it stays as launched (Running)."""
    name = "provision-job-succeeded-only-on-playbook-report"
    seen = [(s, j) for s in trace if (j := s.job("provision")) is not None]
    if not seen or not any(j.get("id") for _, j in seen):
        return Validation(name, False, "no launched provision job observed")
    invented = [
        (s, j)
        for s, j in seen
        if j.get("state") in TERMINAL
        and (j.get("state") != "Succeeded" or not reported_by_playbook(s, j))
    ]
    detail = f"last {_fmt(seen[-1][1])}"
    if invented:
        snap, job = invented[0]
        detail += (
            f"; at rv {snap.resource_version}: {_fmt(job)} with reconciledConfigVersion "
            f"{snap.status.get('reconciledConfigVersion')!r}"
        )
    return Validation(name, not invented, detail)


def provision_succeeded_at_ready(ready: Snapshot, provider: str) -> Validation:
    """The version that first shows Ready shows the provision job Succeeded; with EDA in a
    version where the playbook reported the job's configuration applied."""
    job = ready.job("provision") or {}
    ok = job.get("state") == "Succeeded"
    detail = f"provision {_fmt(job)}"
    if provider == "eda":
        ok = ok and reported_by_playbook(ready, job)
        detail += f"; reconciledConfigVersion {ready.status.get('reconciledConfigVersion')!r}"
    return Validation("provision-job-succeeded", ok, detail)


def at_most_one_deprovision_job(trace: list[Snapshot]) -> Validation:
    """EDA, deleted while provisioning: one deprovision job, or none when the provider skipped
    it (nothing was provisioned yet); it may start while the unobservable provision job runs."""
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    return Validation(
        "at-most-one-deprovision-job", len(ids) <= 1, f"deprovision job ids {sorted(ids)}"
    )


def single_deprovision_after_provision_terminal(trace: list[Snapshot]) -> Validation:
    """Exactly one deprovision job, and every version that shows it shows the provision ended."""
    name = "single-deprovision-job-after-provision-terminal"
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    first = next((s for s in trace if s.job("deprovision") is not None), None)
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


# --- restart (spec.restartRequestedAt) ---------------------------------------------------------

RESTART_CONDITIONS = ("RestartInProgress", "RestartFailed")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes it, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def condition(snap: Snapshot, kind: str) -> dict[str, Any] | None:
    found = [c for c in snap.status.get("conditions") or [] if isinstance(c, dict)]
    return next((c for c in found if c.get("type") == kind), None)


def condition_true(snap: Snapshot, kind: str) -> bool:
    return (condition(snap, kind) or {}).get("status") == "True"


def restarted(snap: Snapshot | None, requested: datetime) -> bool:
    """The restart is over: lastRestartedAt is the request, no restart condition, Ready."""
    if snap is None:
        return False
    return (
        parse_time(snap.status.get("lastRestartedAt")) == requested
        and all(condition(snap, kind) is None for kind in RESTART_CONDITIONS)
        and snap.status.get("phase") == "Ready"
    )


def restart_in_progress_seen(trace: list[Snapshot]) -> Validation:
    """Some version written while the restart ran says so (RestartInProgress True)."""
    shown = [s for s in trace if condition_true(s, "RestartInProgress")]
    detail = (
        f"RestartInProgress True in {len(shown)} versions, first: "
        f"{(condition(shown[0], 'RestartInProgress') or {}).get('message')!r}"
        if shown
        else f"RestartInProgress never True in {len(trace)} versions after the request"
    )
    return Validation("restart-in-progress-seen", bool(shown), detail)


def no_restart_failure(trace: list[Snapshot]) -> Validation:
    failed = [s for s in trace if condition_true(s, "RestartFailed")]
    detail = "RestartFailed never set"
    if failed:
        first = condition(failed[0], "RestartFailed") or {}
        detail = f"RestartFailed {first.get('reason')}: {first.get('message')!r}"
    return Validation("restart-never-failed", not failed, detail)


def instance_recreated(
    before: dict[str, Any] | None, after: dict[str, Any] | None, requested: datetime
) -> Validation:
    """The VirtualMachineInstance now is a new one (another uid), created after the request
    (creation times have whole seconds: the request's second counts)."""
    name = "vmi-recreated-after-request"
    if before is None or after is None:
        missing = "before" if before is None else "after"
        return Validation(name, False, f"no VirtualMachineInstance {missing} the restart")
    old_uid = (before.get("metadata") or {}).get("uid")
    new_uid = (after.get("metadata") or {}).get("uid")
    created = parse_time((after.get("metadata") or {}).get("creationTimestamp"))
    ok = old_uid != new_uid and created is not None and created >= requested.replace(microsecond=0)
    return Validation(
        name,
        ok,
        f"uid {old_uid} -> {new_uid}; created {created and created.isoformat()} "
        f"for a request at {requested.isoformat()}",
    )


def restart_completed(final: Snapshot | None, requested: datetime) -> Validation:
    status = final.status if final else {}
    left = [kind for kind in RESTART_CONDITIONS if final and condition(final, kind) is not None]
    return Validation(
        "restart-completed",
        restarted(final, requested),
        f"lastRestartedAt {status.get('lastRestartedAt')} for {requested.isoformat()}; "
        f"phase {status.get('phase')}; restart conditions left: {left or 'none'}",
    )


def first_instance_address(instance: dict[str, Any] | None) -> str | None:
    for interface in ((instance or {}).get("status") or {}).get("interfaces") or []:
        if isinstance(interface, dict) and interface.get("ipAddress"):
            return str(interface["ipAddress"])
    return None


def ip_address_reported(final: Snapshot | None, instance: dict[str, Any] | None) -> Validation:
    """status.ipAddress is the first address of the VirtualMachineInstance's interfaces."""
    shown = final.status.get("ipAddress") if final else None
    actual = first_instance_address(instance)
    return Validation(
        "ip-address-set",
        bool(shown) and shown == actual,
        f"status.ipAddress {shown!r}; VirtualMachineInstance {actual!r}",
    )


# --- through the fulfillment API (the tenant's view) -------------------------------------------

DEPROVISION_HOLD_S = 10.0
"""Upstream's check: the deprovision job's id stays the same this long (no duplicate job)."""


def deprovision_job_not_failed(trace: list[Snapshot]) -> Validation:
    """The last deprovision job seen did not fail (none at all: the provider skipped it)."""
    last = next((s.job("deprovision") for s in reversed(trace) if s.job("deprovision")), None)
    ok = last is None or last.get("state") != "Failed"
    return Validation("deprovision-job-not-failed", ok, f"last {_fmt(last)}")


def deprovision_job_id_unchanged(
    trace: list[Snapshot], gone: bool, hold_s: float = DEPROVISION_HOLD_S
) -> Validation:
    """At most one deprovision job id from its first sighting on, watched for `hold_s` or
    until the instance was gone (after which no job can start for it)."""
    name = "deprovision-job-id-unchanged"
    first = next((s for s in trace if s.job_ids("deprovision")), None)
    if first is None:
        return Validation(name, True, "no deprovision job (skipped)")
    ids: set[str] = set()
    for snap in trace:
        ids |= snap.job_ids("deprovision")
    watched = trace[-1].at - first.at
    ok = len(ids) == 1 and (gone or watched >= hold_s)
    detail = f"ids {sorted(ids)} over {watched:.1f}s" + (" until gone" if gone else "")
    return Validation(name, ok, detail)


def order_state_seen(state: str, wanted: str, waited_s: float) -> Validation:
    """The tenant saw its order in state `wanted` (short form, e.g. STARTING)."""
    return Validation(
        f"order-{wanted.lower()}",
        state == wanted,
        f"state {state or 'unset'} after {waited_s:.1f}s",
    )


def restart_seen_by_tenant(
    record: dict[str, Any] | None, requested: datetime, waited_s: float
) -> Validation:
    """The tenant's order says the restart it asked for happened: `last_restarted_at` is the
    request (written back from the resource's lastRestartedAt)."""
    seen = ((record or {}).get("status") or {}).get("last_restarted_at")
    return Validation(
        "order-restart-seen",
        parse_time(seen) == requested,
        f"last_restarted_at {seen!r} for {requested.isoformat()} after {waited_s:.1f}s",
    )


def record_gone(gone: bool, waited_s: float) -> Validation:
    """The tenant's record answers 404 once the resource is gone (the order is archived)."""
    return Validation(
        "record-gone",
        gone,
        f"404 after {waited_s:.1f}s" if gone else f"still there after {waited_s:.1f}s",
    )


def tenant_view_agrees(
    record: dict[str, Any] | None,
    resource_status: dict[str, Any] | None,
    state_of_phase: dict[str, str],
    when: str = "at-end",
) -> Validation:
    """The tenant's record says what the resource says (None: gone): both gone, or the state
    the resource's phase maps to and its IP address as `internal_ip_address`."""
    name = f"tenant-view-agrees-{when}"
    state = str(((record or {}).get("status") or {}).get("state") or "")
    state = state.removeprefix("COMPUTE_INSTANCE_STATE_")
    if record is None or resource_status is None:
        gone = record is None and resource_status is None
        detail = f"record {'gone' if record is None else state}; resource " + (
            "gone" if resource_status is None else str(resource_status.get("phase"))
        )
        return Validation(name, gone, detail)
    phase = str(resource_status.get("phase") or "")
    ip = (record.get("status") or {}).get("internal_ip_address") or None
    address = resource_status.get("ipAddress") or None
    ok = state_of_phase.get(phase) == state and ip == address
    detail = f"record {state} {ip!r}; resource {phase} {address!r}"
    return Validation(name, ok, detail)
