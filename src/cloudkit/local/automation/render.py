"""Pure rendering of stored rows into AWX's JSON shapes (jobs, templates, events, pages).

`prefix` is the API root the request came in on ("/api/v2" or "/api/controller/v2"), so the
`url`, `related` and `next` paths a client resolves stay under the prefix it uses (reference §1).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudkit.local.automation.planning import JOB_TEMPLATE, TemplateSpec
from cloudkit.local.automation.store import ACTIVE_STATUSES, Template

VERSION = "24.6.1"
EVENT_STDOUT_LIMIT = 1024
STDOUT_TXT_LIMIT = 1024 * 1024
FAILED_STATUSES = frozenset({"failed", "error", "canceled"})
LAUNCHED_BY = {"id": 1, "name": "admin", "type": "user", "url": "/api/v2/users/1/"}
USER = {
    "id": 1,
    "type": "user",
    "url": "/api/v2/users/1/",
    "username": "admin",
    "first_name": "",
    "last_name": "",
    "email": "",
    "is_superuser": True,
    "is_system_auditor": False,
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def collection_of(job: dict[str, Any]) -> str:
    return "jobs" if job["type"] == "job" else "workflow_jobs"


def job_body(
    job: dict[str, Any], prefix: str, *, detail: bool, now: datetime | None = None
) -> dict[str, Any]:
    job_id, collection = job["id"], collection_of(job)
    url = f"{prefix}/{collection}/{job_id}/"
    template_field = "job_template" if job["type"] == "job" else "workflow_job_template"
    template_collection = "job_templates" if job["type"] == "job" else "workflow_job_templates"
    related: dict[str, Any] = {
        "cancel": f"{url}cancel/",
        template_field: f"{prefix}/{template_collection}/{job['template_id']}/",
    }
    if job["type"] == "job":
        related.update({"stdout": f"{url}stdout/", "job_events": f"{url}job_events/"})
    else:
        related["workflow_nodes"] = f"{url}workflow_nodes/"
    body: dict[str, Any] = {
        "id": job_id,
        "type": job["type"],
        "url": url,
        "related": related,
        "summary_fields": {
            template_field: {"id": job["template_id"], "name": job["name"]},
            "created_by": {"id": 1, "username": "admin"},
        },
        "created": job["created"],
        "modified": job["finished"] or job["started"] or job["created"],
        "name": job["name"],
        "description": "",
        "launch_type": "workflow" if job.get("workflow_job_id") else "manual",
        "status": job["status"],
        "failed": job["status"] in FAILED_STATUSES,
        "started": job["started"],
        "finished": job["finished"],
        "canceled_on": job["canceled_on"],
        "elapsed": elapsed(job, now),
        "job_explanation": job["job_explanation"],
        "extra_vars": job["extra_vars"],
        template_field: job["template_id"],
        "unified_job_template": job["template_id"],
        "launched_by": LAUNCHED_BY,
        "artifacts": json.loads(job["artifacts"] or "{}"),
    }
    if job["type"] == "job":
        body["event_processing_finished"] = bool(job["event_processing_finished"])
        body["workflow_job"] = job.get("workflow_job_id")
        body["playbook"] = ""
    if detail:
        body["result_traceback"] = job["result_traceback"]
    return body


def elapsed(job: dict[str, Any], now: datetime | None = None) -> float:
    if not job["started"]:
        return 0.0
    start = _parse(job["started"])
    end = _parse(job["finished"]) if job["finished"] else (now or datetime.now(UTC))
    return round(max(0.0, (end - start).total_seconds()), 3)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def template_body(template: Template, prefix: str) -> dict[str, Any]:
    spec = TemplateSpec.from_json(template.spec)
    collection = "job_templates" if template.kind == JOB_TEMPLATE else "workflow_job_templates"
    url = f"{prefix}/{collection}/{template.id}/"
    body: dict[str, Any] = {
        "id": template.id,
        "type": template.kind,
        "url": url,
        "related": {"launch": f"{url}launch/"},
        "summary_fields": {"organization": {"id": 1, "name": "Default"}},
        "name": template.name,
        "description": spec.description,
        "organization": 1,
        "extra_vars": json.dumps(spec.extra_vars),
        "ask_variables_on_launch": spec.ask_variables_on_launch,
        "survey_enabled": False,
        "allow_simultaneous": True,
        "status": "never updated",
    }
    if template.kind == JOB_TEMPLATE:
        body.update(
            {
                "playbook": spec.simulate.playbook_label
                if spec.simulate
                else Path(spec.playbook).name,
                "job_type": "run",
                "ask_inventory_on_launch": False,
                "ask_limit_on_launch": False,
                "timeout": spec.timeout,
            }
        )
    return body


def launch_preflight(template: Template) -> dict[str, Any]:
    spec = TemplateSpec.from_json(template.spec)
    return {
        "can_start_without_user_input": True,
        "passwords_needed_to_start": [],
        "variables_needed_to_start": [],
        "ask_variables_on_launch": spec.ask_variables_on_launch,
        "ask_inventory_on_launch": False,
        "ask_limit_on_launch": False,
        "ask_tags_on_launch": False,
        "ask_credential_on_launch": False,
        "survey_enabled": False,
        "defaults": {"extra_vars": json.dumps(spec.extra_vars)},
        "job_template_data": {
            "id": template.id,
            "name": template.name,
            "description": spec.description,
        },
    }


def event_body(event: dict[str, Any], prefix: str, *, truncate: bool) -> dict[str, Any]:
    stdout = event["stdout"]
    if truncate and len(stdout.encode()) > EVENT_STDOUT_LIMIT:
        stdout = stdout.encode()[:EVENT_STDOUT_LIMIT].decode(errors="ignore")
    return {
        "id": event["counter"],
        "type": "job_event",
        "url": f"{prefix}/job_events/{event['job_id']}-{event['counter']}/",
        "job": event["job_id"],
        "counter": event["counter"],
        "event": event["event"],
        "event_data": json.loads(event["event_data"]),
        "failed": bool(event["failed"]),
        "changed": bool(event["changed"]),
        "uuid": event["uuid"],
        "parent_uuid": event["parent_uuid"],
        "host_name": event["host_name"],
        "task": event["task"],
        "stdout": stdout,
        "start_line": event["start_line"],
        "end_line": event["end_line"],
        "created": event["created"],
    }


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def stdout_too_large(size: int) -> str:
    return (
        f"Standard Output too large to display ({size} bytes), only download supported "
        f"for sizes over {STDOUT_TXT_LIMIT // (1024 * 1024)} MB."
    )


def page_body(count: int, results: list[dict[str, Any]], links: dict[str, Any]) -> dict[str, Any]:
    return {"count": count, **links, "results": results}


def ping_body(workers: int) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "ha": False,
        "version": VERSION,
        "active_node": "localhost",
        "install_uuid": "00000000-0000-0000-0000-000000000000",
        "instances": [
            {
                "node": "localhost",
                "node_type": "hybrid",
                "uuid": "localhost",
                "heartbeat": now,
                "capacity": workers,
                "version": VERSION,
            }
        ],
        "instance_groups": [{"name": "default", "capacity": workers, "instances": ["localhost"]}],
    }


def is_active(job: dict[str, Any]) -> bool:
    return job["status"] in ACTIVE_STATUSES
