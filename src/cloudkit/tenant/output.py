"""What the tenant's commands print: tables, JSON and YAML of compute instances, the
`describe` text, and errors rendered once (the server's message, then each field at fault)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import yaml

from cloudkit.fulfillment.client import ApiError, NotFound
from cloudkit.fulfillment.models import (
    ComputeInstanceConditionType,
    ComputeInstanceState,
    ConditionStatus,
    EventType,
)

Object = dict[str, Any]
COLUMNS = ("ID", "NAME", "TEMPLATE", "STATE", "IP", "AGE")
FORMATS = ("table", "json", "yaml")
# kubectl's names of HTTP statuses in "Error from server (Reason)".
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    422: "Invalid",
    503: "ServiceUnavailable",
}


def age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 3h, 2d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def short(kind: type[StrEnum], value: Any) -> str:
    """An enum as people read it (RUNNING for COMPUTE_INSTANCE_STATE_RUNNING); a value this
    client does not know yet is shown as sent."""
    try:
        return kind(value).name
    except ValueError:
        return str(value)


def event_name(value: Any) -> str:
    return short(EventType, value)


def row(obj: Object) -> tuple[str, ...]:
    metadata, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    state = short(ComputeInstanceState, status.get("state") or ComputeInstanceState.UNSPECIFIED)
    if metadata.get("deletion_timestamp") and state != "DELETING":
        state = f"{state} (deleting)"
    return (
        str(obj.get("id", "")),
        str(metadata.get("name") or ""),
        str(spec.get("template") or ""),
        state,
        str(status.get("internal_ip_address") or ""),
        age(metadata.get("creation_timestamp")),
    )


def table(rows: Iterable[Sequence[str]], header: Sequence[str] = COLUMNS) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    lines = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, sort_keys=False)
    return yaml.safe_dump(value, sort_keys=False).rstrip("\n")


def describe(obj: Object) -> str:
    metadata, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    lines = [
        f"ID:                   {obj.get('id', '')}",
        f"Name:                 {metadata.get('name') or ''}",
        f"Tenant:               {metadata.get('tenant') or ''}",
        f"Creator:              {metadata.get('creator') or ''}",
        f"Created:              {metadata.get('creation_timestamp') or ''}",
        f"Version:              {metadata.get('version', '')}",
    ]
    if metadata.get("deletion_timestamp"):
        lines.append(f"Deleted:              {metadata['deletion_timestamp']}")
    lines += [
        f"Template:             {spec.get('template') or ''}",
        "Template parameters:" + _mapping(spec.get("template_parameters") or {}),
        f"Image:                {(spec.get('image') or {}).get('source_ref') or '<none>'}",
        f"Boot disk:            {_disk(spec.get('boot_disk'))}",
        f"Run strategy:         {spec.get('run_strategy') or '<default>'}",
        "Status:",
        f"  State:              {short(ComputeInstanceState, status.get('state') or '')}",
        f"  Since:              {status.get('state_transition_time') or '<unknown>'}",
        f"  Internal IP:        {status.get('internal_ip_address') or '<none>'}",
        f"  External IP:        {status.get('external_ip_address') or '<none>'}",
        "Conditions:" + _indented(_conditions(status.get("conditions") or [])),
        "Jobs:" + _indented(_jobs(status.get("jobs") or [])),
        "Events:" + _indented(_events(status.get("conditions") or [])),
    ]
    return "\n".join(lines)


def _mapping(values: dict[str, Any]) -> str:
    if not values:
        return "  <none>"
    return "".join(f"\n  {key}: {json.dumps(value)}" for key, value in sorted(values.items()))


def _disk(disk: Any) -> str:
    return (
        f"{disk['size_gib']} GiB" if isinstance(disk, dict) and "size_gib" in disk else "<default>"
    )


def _indented(text: str) -> str:
    return "\n" + "\n".join("  " + line for line in text.splitlines()) if text else "  <none>"


def _conditions(conditions: list[Object]) -> str:
    if not conditions:
        return ""
    rows = [
        (short(ComputeInstanceConditionType, c.get("type")),
         short(ConditionStatus, c.get("status")), str(c.get("reason") or ""),
         str(c.get("last_transition_time") or ""), str(c.get("message") or ""))
        for c in conditions
    ]  # fmt: skip
    return table(rows, ("TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"))


def _jobs(jobs: list[Any]) -> str:
    """Jobs, when the status carries them (the operator's feedback may report them)."""
    if not jobs:
        return ""
    rows = [
        tuple(str(job.get(k) or "") for k in ("id", "kind", "state", "started_at"))
        for job in jobs
        if isinstance(job, dict)
    ]
    return table(rows, ("ID", "KIND", "STATE", "STARTED"))


def _events(conditions: list[Object]) -> str:
    """The record's history as far as the API keeps one: each condition's last transition,
    oldest first (the event stream itself is live only)."""
    changed = [c for c in conditions if c.get("last_transition_time")]
    changed.sort(key=lambda c: str(c["last_transition_time"]))
    rows = [
        (age(str(c["last_transition_time"])), short(ComputeInstanceConditionType, c.get("type")),
         short(ConditionStatus, c.get("status")) + (f" ({c['reason']})" if c.get("reason") else ""),
         str(c.get("message") or ""))
        for c in changed
    ]  # fmt: skip
    return table(rows, ("AGE", "CONDITION", "NOW", "MESSAGE")) if rows else ""


def error_text(error: ApiError, what: str = "") -> str:
    """One message for people: kubectl's `Error from server (Reason)` line, then each field
    at fault that the message does not already name."""
    if isinstance(error, NotFound):
        return f"Error from server (NotFound): {what or 'record'} not found"
    reason = REASONS.get(error.status, "InternalError")
    lines = [f"Error from server ({reason}): {error.message}"]
    for detail in error.details:
        line = f"{detail.field}: {detail.reason}"
        if line not in error.message:
            lines.append(f"  {line}")
    return "\n".join(lines)
