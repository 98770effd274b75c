"""What each endpoint says about itself: fields, filters and AWX's `OPTIONS` metadata (pure).

AWX answers `OPTIONS` on every list and detail endpoint with Django REST framework's metadata
(`name`, `description`, `renders`, `parses`, `actions`) plus its own keys (`types`,
`search_fields`, `related_search_fields`, `max_page_size`). The AWX CLI (awxkit) builds its
sub-commands and flags from `actions` (reference §8), so the field catalogue here is the one
place that decides both what `OPTIONS` advertises as filterable and which list filters and
`order_by` fields the views accept: the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloudkit.local.automation.listing import MAX_PAGE_SIZE

RENDERS = ("application/json",)
PARSES = ("application/json",)

STATUS_CHOICES = (
    ("new", "New"),
    ("pending", "Pending"),
    ("waiting", "Waiting"),
    ("running", "Running"),
    ("successful", "Successful"),
    ("failed", "Failed"),
    ("error", "Error"),
    ("canceled", "Canceled"),
)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a resource as AWX's metadata describes it.

    `column` is set when list filters and `order_by` may name the field (the store column it
    maps to); such a field is `filterable` in `OPTIONS`.
    """

    name: str
    type: str
    help_text: str
    column: str | None = None
    choices: tuple[tuple[Any, str], ...] = ()
    required: bool = False
    default: Any = None

    @property
    def label(self) -> str:
        # DRF derives a label from the field name: "job_template" -> "Job template".
        text = self.name.replace("_", " ")
        return "ID" if self.name == "id" else text[:1].upper() + text[1:]

    def read_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "type": self.type,
            "hidden": False,
            "label": self.label,
            "help_text": self.help_text,
            "filterable": self.column is not None,
        }
        if self.choices:
            meta["choices"] = [list(choice) for choice in self.choices]
        return meta

    def write_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "type": self.type,
            "required": self.required,
            "hidden": False,
            "label": self.label,
            "help_text": self.help_text,
        }
        if self.default is not None:
            meta["default"] = self.default
        if self.choices:
            meta["choices"] = [list(choice) for choice in self.choices]
        return meta


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint's self-description: what `OPTIONS` answers, and its list filters."""

    name: str
    description: str
    read: tuple[Field, ...] = ()
    write: tuple[Field, ...] | None = None
    """What a POST takes; None when the endpoint takes no POST."""
    types: tuple[str, ...] = ()
    search_fields: tuple[str, ...] = ()
    list_view: bool = False

    def filters(self) -> dict[str, str]:
        """API field name -> store column for every filterable field."""
        return {f.name: f.column for f in self.read if f.column is not None}

    def options_body(self, *, can_write: bool) -> dict[str, Any]:
        """The `OPTIONS` answer. A read-only caller sees no POST action, as AWX leaves out
        the methods its permission check refuses."""
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "renders": list(RENDERS),
            "parses": list(PARSES),
        }
        actions: dict[str, Any] = {}
        if self.read:
            actions["GET"] = {f.name: f.read_meta() for f in self.read}
        if self.write is not None and can_write:
            actions["POST"] = {f.name: f.write_meta() for f in self.write}
        if actions:
            body["actions"] = actions
        if self.types:
            body["types"] = list(self.types)
        if self.search_fields:
            body["search_fields"] = list(self.search_fields)
            body["related_search_fields"] = []
        if self.list_view:
            body["max_page_size"] = MAX_PAGE_SIZE
        return body


def _common(kind: str, type_choices: Iterable[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("id", "integer", f"Database ID for this {kind}.", column="id"),
        Field("type", "choice", f"Data type for this {kind}.", choices=tuple(type_choices)),
        Field("url", "string", f"URL for this {kind}."),
        Field("related", "object", "Data structure with URLs of related resources."),
        Field("summary_fields", "object", "Data structure with name/id for related resources."),
        Field("name", "string", f"Name of this {kind}.", column="name"),
        Field("description", "string", f"Optional description of this {kind}."),
    )


def _template_fields(kind: str, type_name: str, label: str) -> tuple[Field, ...]:
    return (
        *_common(kind, [(type_name, label)]),
        Field("organization", "id", "The organization the template belongs to."),
        Field("extra_vars", "json", "Variables saved on the template (rendered by Ansible)."),
        Field(
            "ask_variables_on_launch",
            "boolean",
            "Whether extra_vars given at launch are used (otherwise ignored or refused).",
        ),
        Field("survey_enabled", "boolean", "Always false: the service has no surveys."),
        Field("allow_simultaneous", "boolean", "Whether jobs of the template may run at once."),
        Field("status", "choice", "Status of the template's last job.", choices=STATUS_CHOICES),
    )


JOB_TEMPLATE_FIELDS = (
    *_template_fields("job template", "job_template", "Job Template"),
    Field("playbook", "string", "Playbook the template runs (file name)."),
    Field("job_type", "choice", "Always run.", choices=(("run", "Run"),)),
    Field("ask_inventory_on_launch", "boolean", "Always false: the inventory is fixed."),
    Field("ask_limit_on_launch", "boolean", "Always false: the limit is fixed."),
    Field("timeout", "integer", "Seconds before the job fails as timed out (0: none)."),
)
WORKFLOW_TEMPLATE_FIELDS = _template_fields(
    "workflow job template", "workflow_job_template", "Workflow Job Template"
)


def _job_fields(
    kind: str, types: Iterable[tuple[str, str]], template_field: str
) -> tuple[Field, ...]:
    return (
        *_common(kind, types),
        Field("created", "datetime", f"Timestamp when this {kind} was created.", "created"),
        Field("modified", "datetime", f"Timestamp when this {kind} was last modified."),
        Field("launch_type", "choice", "How the job was started.", choices=_LAUNCH_TYPES),
        Field("status", "choice", "Status of the job.", "status", STATUS_CHOICES),
        Field("failed", "boolean", "True when the status is failed, error or canceled."),
        Field("started", "datetime", "When the job started running.", "started"),
        Field("finished", "datetime", "When the job ended.", "finished"),
        Field("canceled_on", "datetime", "When a cancel was requested."),
        Field("elapsed", "decimal", "Seconds the job has run (live while running)."),
        Field("job_explanation", "string", "Why the job has its status, in words."),
        Field("extra_vars", "json", "The merged variables the job ran with (a JSON string)."),
        Field(template_field, "id", "The template this job was launched from.", "template_id"),
        Field("launched_by", "field", "The user who launched the job."),
        Field("artifacts", "json", "Facts the playbook set with set_stats."),
    )


_LAUNCH_TYPES = (("manual", "Manual"), ("workflow", "Workflow"))
_JOB_TYPE = (("job", "Playbook Run"),)
_WORKFLOW_TYPE = (("workflow_job", "Workflow Job"),)

JOB_FIELDS = (
    *_job_fields("job", _JOB_TYPE, "job_template"),
    Field("event_processing_finished", "boolean", "Whether stdout and events are complete."),
    Field("workflow_job", "field", "The workflow job that spawned this job, if any."),
    Field("playbook", "string", "Playbook the job runs."),
)
WORKFLOW_JOB_FIELDS = _job_fields("workflow job", _WORKFLOW_TYPE, "workflow_job_template")
UNIFIED_JOB_FIELDS = _job_fields("unified job", _JOB_TYPE + _WORKFLOW_TYPE, "unified_job_template")
TRACEBACK = Field("result_traceback", "string", "The control process's traceback, if any.")

EXTRA_VARS = Field(
    "extra_vars",
    "json",
    "Variables for this launch: a JSON object, or a string holding JSON or YAML. They are "
    "data (marked unsafe), used only when the template asks for variables on launch.",
    default="",
)
LAUNCH_READ = (
    Field("can_start_without_user_input", "boolean", "Always true: no prompt is required."),
    Field("ask_variables_on_launch", "boolean", "Whether launch-time extra_vars are used."),
    Field("variables_needed_to_start", "field", "Always empty: the service has no surveys."),
    Field("defaults", "field", "The template's own values."),
)
CANCEL_READ = (
    Field("can_cancel", "boolean", "True while the job is new, pending, waiting or running."),
)

_SEARCH = ("name",)


def _collection(
    title: str, kind: str, fields: tuple[Field, ...], types: tuple[str, ...]
) -> Endpoint:
    return Endpoint(
        name=title,
        description=f"List {kind}s: a page of at most {MAX_PAGE_SIZE}, filtered and ordered.",
        read=fields,
        types=types,
        search_fields=_SEARCH,
        list_view=True,
    )


def _detail(title: str, kind: str, fields: tuple[Field, ...], types: tuple[str, ...]) -> Endpoint:
    return Endpoint(
        name=f"{title} Detail", description=f"One {kind} by id.", read=fields, types=types
    )


def _launch(title: str, kind: str) -> Endpoint:
    return Endpoint(
        name=title,
        description=f"GET: what a launch needs. POST: start a {kind} (201).",
        read=LAUNCH_READ,
        write=(EXTRA_VARS,),
    )


ENDPOINTS: dict[str, Endpoint] = {
    "job_templates": _collection(
        "Job Templates", "job template", JOB_TEMPLATE_FIELDS, ("job_template",)
    ),
    "job_template": _detail("Job Template", "job template", JOB_TEMPLATE_FIELDS, ("job_template",)),
    "workflow_job_templates": _collection(
        "Workflow Job Templates",
        "workflow job template",
        WORKFLOW_TEMPLATE_FIELDS,
        ("workflow_job_template",),
    ),
    "workflow_job_template": _detail(
        "Workflow Job Template",
        "workflow job template",
        WORKFLOW_TEMPLATE_FIELDS,
        ("workflow_job_template",),
    ),
    "job_template_launch": _launch("Job Template Launch", "job"),
    "workflow_job_template_launch": _launch("Workflow Job Template Launch", "workflow job"),
    "jobs": _collection("Jobs", "job", JOB_FIELDS, ("job",)),
    "job": _detail("Job", "job", (*JOB_FIELDS, TRACEBACK), ("job",)),
    "workflow_jobs": _collection(
        "Workflow Jobs", "workflow job", WORKFLOW_JOB_FIELDS, ("workflow_job",)
    ),
    "workflow_job": _detail(
        "Workflow Job", "workflow job", (*WORKFLOW_JOB_FIELDS, TRACEBACK), ("workflow_job",)
    ),
    "unified_jobs": _collection(
        "Unified Jobs", "job of every type", UNIFIED_JOB_FIELDS, ("job", "workflow_job")
    ),
    "cancel": Endpoint(
        name="Job Cancel",
        description="GET: whether the job can be canceled. POST: cancel it (202, or 405).",
        read=CANCEL_READ,
        write=(),
    ),
}


def plain(name: str, description: str) -> Endpoint:
    """An endpoint with no field catalogue (stdout, events, ping): name and description only."""
    return Endpoint(name=name, description=description)
