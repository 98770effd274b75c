"""The AAP/AWX controller wire format: requests to build and responses to read, without I/O.

Everything here is pure so it can be unit-tested without a server (httpx's split between the
request/response model and the transport). The transport (client.py) only turns a `Request`
into bytes on a socket and the bytes back into a `Response`.

Job ids handed to the lifecycle core encode the job kind ("123" for a playbook job,
"workflow-123" for a workflow job) because AWX serves the two under different collections
(`jobs/` answers 404 for a workflow job id); encoding it means polling after an operator
restart needs no template cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cloudkit.api.jobs import JobReading, JobState
from cloudkit.providers.aap.messages import (
    DEFAULT_RETRY_AFTER,
    Request,
    Response,
    error_for,
    int_field,
    invalid,
    json_object,
    parse_retry_after,
    redact,
)
from cloudkit.providers.base import CancelAnswer, ProviderNotAllowed

# The request/response model lives in messages.py; it is re-exported so callers need one module.
__all__ = [
    "CORRELATION_VAR",
    "DEFAULT_RETRY_AFTER",
    "FIND_PAGE_SIZE",
    "FIND_SKEW",
    "PURGED_MESSAGE",
    "AapJobId",
    "FoundPage",
    "JobKind",
    "Request",
    "Response",
    "TemplateKind",
    "TemplateRef",
    "cancel_answer",
    "cancel_request",
    "error_for",
    "find_jobs_request",
    "job_request",
    "job_state",
    "launch_extra_vars",
    "launch_request",
    "parse_find",
    "parse_job",
    "parse_launch",
    "parse_retry_after",
    "parse_template_lookup",
    "purged_reading",
    "reading_from_job",
    "redact",
    "template_lookup_request",
]

CORRELATION_VAR = "cloudkit_correlation_id"
"""The extra var carrying our correlation id; find_job matches launches on it after a crash."""

FIND_SKEW = timedelta(seconds=60)
"""Clock skew allowed between us and the controller when listing jobs created since an intent."""

PURGED_MESSAGE = "job no longer exists in AAP (purged)"


class TemplateKind(StrEnum):
    JOB = "job_template"
    WORKFLOW = "workflow_job_template"

    @property
    def collection(self) -> str:
        """The template collection under v2/."""
        return "job_templates" if self is TemplateKind.JOB else "workflow_job_templates"


class JobKind(StrEnum):
    JOB = "job"
    WORKFLOW = "workflow_job"

    @property
    def collection(self) -> str:
        """The job collection under v2/: jobs/ serves only playbook jobs."""
        return "jobs" if self is JobKind.JOB else "workflow_jobs"

    @property
    def template_filter(self) -> str:
        """The list filter naming the template a job was launched from."""
        return "job_template" if self is JobKind.JOB else "workflow_job_template"


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A template resolved from its name: launches go by numeric id (a gateway rejects names)."""

    name: str
    id: int
    kind: TemplateKind

    @property
    def job_kind(self) -> JobKind:
        return JobKind.JOB if self.kind is TemplateKind.JOB else JobKind.WORKFLOW


_WORKFLOW_PREFIX = "workflow-"
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class AapJobId:
    """A job id as stored in ComputeInstance status: the number and the collection it lives in."""

    kind: JobKind
    number: int

    def __str__(self) -> str:
        if self.kind is JobKind.WORKFLOW:
            return f"{_WORKFLOW_PREFIX}{self.number}"
        return str(self.number)

    @classmethod
    def parse(cls, job_id: str) -> AapJobId:
        """Read "123" or "workflow-123"; anything else (e.g. an EDA id) is not ours to poll."""
        rest, kind = job_id, JobKind.JOB
        if job_id.startswith(_WORKFLOW_PREFIX):
            rest, kind = job_id[len(_WORKFLOW_PREFIX) :], JobKind.WORKFLOW
        if not _DIGITS.fullmatch(rest):
            raise ProviderNotAllowed(f"{job_id!r} is not an AAP job id")
        return cls(kind, int(rest))


# --- templates ----------------------------------------------------------------------------------


def template_lookup_request(kind: TemplateKind, name: str) -> Request:
    """Exact-name match on one template collection (the name is URL-encoded in the query)."""
    return Request("GET", f"v2/{kind.collection}/", (("name", name),))


def parse_template_lookup(
    request: Request, response: Response, kind: TemplateKind, name: str
) -> TemplateRef | None:
    """The first template of that name, or None. Names are unique only per organization."""
    body = json_object(request, response)
    results = body.get("results")
    if not isinstance(results, list):
        raise invalid(request, response, "paginated list without 'results'")
    for item in results:
        if isinstance(item, dict) and item.get("name", name) == name:
            return TemplateRef(name, int_field(request, response, item, "id"), kind)
    return None


# --- launch -------------------------------------------------------------------------------------


def launch_extra_vars(instance: Mapping[str, Any], correlation_id: str) -> dict[str, Any]:
    """Variables for a launch: the EDA event shape, so playbooks written for EDA run unchanged."""
    return {
        "ansible_eda": {"event": {"payload": dict(instance)}},
        CORRELATION_VAR: correlation_id,
    }


def launch_request(template: TemplateRef, extra_vars: Mapping[str, Any]) -> Request:
    path = f"v2/{template.kind.collection}/{template.id}/launch/"
    return Request("POST", path, (), {"extra_vars": extra_vars})


def parse_launch(request: Request, response: Response) -> AapJobId:
    """The launched job's id; a non-empty `ignored_fields` is an error.

    A job template without ask_variables_on_launch accepts the launch (201) and silently drops
    our variables, listing them under ignored_fields: the playbook would run without the
    instance. The job has been created by then; the message names it so a person can cancel it.
    """
    body = json_object(request, response)
    number = int_field(request, response, body, "id")
    # Slicing turns a job template launch into a workflow job: branch on `type`.
    job_type = body.get("type", "job")
    kind = JobKind.WORKFLOW if job_type == "workflow_job" else JobKind.JOB
    job_id = AapJobId(kind, number)
    ignored = body.get("ignored_fields") or {}
    if ignored:
        names = sorted(ignored) if isinstance(ignored, dict) else [str(ignored)]
        raise ProviderNotAllowed(
            f"AAP ignored launch fields {', '.join(names)} (job {job_id}): enable "
            "'Prompt on launch' for variables on the template",
            status=response.status,
        )
    return job_id


# --- job status ---------------------------------------------------------------------------------

_STATES: Mapping[str, JobState] = {
    "successful": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "error": JobState.FAILED,
    "canceled": JobState.CANCELED,
    "pending": JobState.PENDING,
    "waiting": JobState.WAITING,
    "running": JobState.RUNNING,
    # Upstream maps `new` to Unknown; it is a created job not yet queued, i.e. pending.
    "new": JobState.PENDING,
}


def job_state(status: str) -> JobState:
    """AWX status word → JobState; unknown words are Unknown (not terminal: keep polling)."""
    return _STATES.get(status, JobState.UNKNOWN)


def job_request(job_id: AapJobId) -> Request:
    return Request("GET", f"v2/{job_id.kind.collection}/{job_id.number}/")


def _details(job: Mapping[str, Any]) -> str:
    """job_explanation and result_traceback: the traceback alone is usually empty (#8709)."""
    parts = [str(job.get(key) or "").strip() for key in ("job_explanation", "result_traceback")]
    return "\n".join(part for part in parts if part)


def reading_from_job(job_id: str, job: Mapping[str, Any]) -> JobReading | None:
    """A JobReading from a job object, or None if it has no status string."""
    status = job.get("status")
    if not isinstance(status, str) or not status:
        return None
    state = job_state(status)
    details = _details(job) if status in ("failed", "error") else ""
    return JobReading(job_id=job_id, state=state, message=status, details=details)


def parse_job(request: Request, response: Response, job_id: AapJobId) -> JobReading:
    reading = reading_from_job(str(job_id), json_object(request, response))
    if reading is None:
        raise invalid(request, response, "job without a 'status'")
    return reading


def purged_reading(job_id: str) -> JobReading:
    """What a 404 on a job we launched means: cleanup_jobs purged it (only finished jobs)."""
    return JobReading(job_id=job_id, state=JobState.UNKNOWN, message=PURGED_MESSAGE, purged=True)


# --- cancel -------------------------------------------------------------------------------------


def cancel_request(job_id: AapJobId) -> Request:
    return Request("POST", f"v2/{job_id.kind.collection}/{job_id.number}/cancel/")


def cancel_answer(response: Response) -> CancelAnswer | None:
    """202 → requested; 405 → the job already ended (AWX UI and awxkit read it the same way)."""
    if response.status == 405:
        return CancelAnswer.ALREADY_TERMINAL
    if 200 <= response.status < 300:
        return CancelAnswer.REQUESTED
    return None


# --- find a launch by correlation id ------------------------------------------------------------

FIND_PAGE_SIZE = 200
"""AWX's maximum page size: one page normally covers every launch since the intent."""


def _format_since(since: datetime) -> str:
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return (since - FIND_SKEW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def find_jobs_request(template: TemplateRef, since: datetime, *, page: int = 1) -> Request:
    """Newest first, created since the intent minus skew; extra_vars cannot be filtered (403)."""
    kind = template.job_kind
    query = [
        (kind.template_filter, str(template.id)),
        ("created__gte", _format_since(since)),
        ("order_by", "-id"),
        ("page_size", str(FIND_PAGE_SIZE)),
    ]
    if page > 1:
        query.append(("page", str(page)))
    return Request("GET", f"v2/{kind.collection}/", tuple(query))


def _extra_vars(item: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = item.get("extra_vars")
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        if isinstance(parsed, Mapping):
            return parsed
    return {}


@dataclass(frozen=True, slots=True)
class FoundPage:
    match: JobReading | None
    has_next: bool


def parse_find(
    request: Request, response: Response, template: TemplateRef, correlation_id: str
) -> FoundPage:
    """The job on this page whose extra_vars carry the correlation id, and whether to go on."""
    body = json_object(request, response)
    results = body.get("results")
    if not isinstance(results, list):
        raise invalid(request, response, "paginated list without 'results'")
    for item in results:
        if not isinstance(item, dict):
            continue
        if _extra_vars(item).get(CORRELATION_VAR) != correlation_id:
            continue
        job_id = AapJobId(template.job_kind, int_field(request, response, item, "id"))
        reading = reading_from_job(str(job_id), item)
        if reading is None:
            raise invalid(request, response, "job without a 'status'")
        return FoundPage(reading, has_next=False)
    return FoundPage(None, has_next=bool(body.get("next")))
