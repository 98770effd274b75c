"""Pure job planning: templates file entries, launch bodies, extra-vars policy, runner arguments.

Nothing here touches the network, the store or a process, so every rule of the launch contract
(reference §3: ignored_fields for job templates, 400 for workflow templates, 400 for
unparsable extra_vars) is unit-testable on plain data. Which variables are data and which
may hold Jinja is `extravars`'s rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloudkit.local.automation.simulation import (
    SIMULATED,
    SimulationSpec,
    described,
    parse_simulation,
)

JOB_TEMPLATE = "job_template"
WORKFLOW_TEMPLATE = "workflow_job_template"
KINDS = (JOB_TEMPLATE, WORKFLOW_TEMPLATE)

# Environment every job gets; the playbook decides the rest (fact gathering etc.).
BASE_JOB_ENV = {
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "PYTHONUNBUFFERED": "1",
}

# Launch body fields AWX knows as prompts; all but extra_vars are only recorded as ignored.
PROMPT_FIELDS = frozenset(
    {
        "inventory",
        "limit",
        "job_tags",
        "skip_tags",
        "credentials",
        "labels",
        "job_type",
        "verbosity",
        "diff_mode",
        "scm_branch",
        "forks",
        "timeout",
        "instance_groups",
        "execution_environment",
        "job_slice_count",
    }
)


class TemplateError(ValueError):
    """The templates file is malformed; the message names the entry."""


class LaunchRejected(Exception):
    """A launch the API answers with 400; `body` is the AWX field map."""

    def __init__(self, body: dict[str, list[str]]) -> None:
        super().__init__(json.dumps(body))
        self.body = body


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    name: str
    kind: str
    playbook: str = ""
    inventory: str | None = None
    ask_variables_on_launch: bool = True
    extra_vars: dict[str, Any] = field(default_factory=dict)
    notification: WebhookNotification | None = None
    nodes: tuple[str, ...] = ()
    description: str = ""
    timeout: int = 0
    simulate: SimulationSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "playbook": self.playbook,
            "inventory": self.inventory,
            "ask_variables_on_launch": self.ask_variables_on_launch,
            "extra_vars": self.extra_vars,
            "notification": self.notification.to_json() if self.notification else None,
            "nodes": list(self.nodes),
            "description": self.description,
            "timeout": self.timeout,
            "simulate": self.simulate.to_json() if self.simulate else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemplateSpec:
        # A row stored before notifications moved to `notification` may still hold a
        # `notification_url`; it is dropped (its URL may carry a token) until the file is reloaded.
        kept = {key: value for key, value in data.items() if key != "notification_url"}
        notification, simulate = data.get("notification"), data.get("simulate")
        return cls(
            **{
                **kept,
                "simulate": SimulationSpec.from_json(simulate) if simulate else None,
                "nodes": tuple(data.get("nodes") or ()),
                "notification": WebhookNotification.from_json(notification)
                if notification
                else None,
            }
        )


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    extra_vars: dict[str, Any]
    ignored_fields: dict[str, Any]


def parse_templates(entries: Any, base_dir: Path) -> list[TemplateSpec]:
    """Validate templates-file entries; paths become absolute relative to `base_dir`.

    Each entry: `name`, `kind` (job_template | workflow_job_template, default job_template;
    or simulated, a job template whose jobs a `simulate` entry describes: see `simulation`),
    `playbook` (job templates), `inventory` (a path, or an inline list such as "localhost,"),
    `ask_variables_on_launch` (default true), `extra_vars`, `notification` (see
    `parse_notification`), `timeout` (seconds, 0 = none), `description`, and for workflows
    `nodes` (job template names, run in sequence).
    """
    if not isinstance(entries, list):
        raise TemplateError("the templates file must hold a list of templates")
    specs: list[TemplateSpec] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TemplateError(f"template #{index} needs a name")
        specs.append(_template_spec(entry, base_dir))
    job_names = {s.name for s in specs if s.kind == JOB_TEMPLATE}
    for spec in specs:
        missing = [n for n in spec.nodes if n not in job_names]
        if missing:
            raise TemplateError(f"workflow {spec.name!r}: unknown job templates {missing}")
    return specs


def _template_spec(entry: dict[str, Any], base_dir: Path) -> TemplateSpec:
    name, kind = entry["name"], entry.get("kind", JOB_TEMPLATE)
    # A simulated template is served as a job template; only its runs differ.
    simulate = _simulation(name, entry) if kind == SIMULATED else None
    if simulate is not None:
        kind = JOB_TEMPLATE
    elif kind not in KINDS:
        raise TemplateError(f"template {name!r}: kind must be one of {(*KINDS, SIMULATED)}")
    elif "simulate" in entry:
        raise TemplateError(f"template {name!r}: simulate needs kind {SIMULATED}")
    extra_vars = entry.get("extra_vars") or {}
    if not isinstance(extra_vars, dict):
        raise TemplateError(f"template {name!r}: extra_vars must be a mapping")
    playbook = entry.get("playbook") or ""
    if kind == JOB_TEMPLATE and not playbook and simulate is None:
        raise TemplateError(f"template {name!r}: a job template needs a playbook")
    inventory = entry.get("inventory")
    return TemplateSpec(
        name=name,
        kind=kind,
        playbook=str(base_dir / playbook) if playbook else "",
        inventory=_inventory(inventory, base_dir) if inventory else None,
        ask_variables_on_launch=bool(entry.get("ask_variables_on_launch", True)),
        extra_vars=dict(extra_vars),
        notification=parse_notification(name, entry),
        nodes=tuple(entry.get("nodes") or ()),
        description=_description(str(entry.get("description", "")), simulate),
        timeout=int(entry.get("timeout", 0) or 0),
        simulate=simulate,
    )


def _simulation(name: str, entry: dict[str, Any]) -> SimulationSpec:
    try:
        return parse_simulation(name, entry)
    except ValueError as error:
        raise TemplateError(str(error)) from error


def _description(text: str, simulate: SimulationSpec | None) -> str:
    return described(text) if simulate is not None else text


def _inventory(value: str, base_dir: Path) -> str:
    # A comma marks an inline host list ("localhost,"), as with ansible-playbook -i.
    return value if "," in value else str(base_dir / value)


NOTIFICATION_METHODS = ("POST", "PUT")
NOTIFICATION_KEYS = frozenset(
    {
        "notification_type",
        "url",
        "headers",
        "http_method",
        "username",
        "password",
        "disable_ssl_verification",
    }
)


@dataclass(frozen=True, slots=True)
class WebhookNotification:
    """Where a template's job status changes are sent: AWX's webhook notification template
    (`notification_configuration`). Credentials belong in `headers` or `username`/`password`,
    never in the URL; the URL, headers and password stay out of repr, hence out of logs."""

    url: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    http_method: str = "POST"
    username: str = ""
    password: str = field(default="", repr=False)
    disable_ssl_verification: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "headers": dict(self.headers),
            "http_method": self.http_method,
            "username": self.username,
            "password": self.password,
            "disable_ssl_verification": self.disable_ssl_verification,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookNotification:
        return cls(**{**data, "headers": tuple(dict(data.get("headers") or {}).items())})


def parse_notification(name: str, entry: Mapping[str, Any]) -> WebhookNotification | None:
    """A template's `notification` entry: `url` (http or https), `headers` (a map sent with
    every notification, the place for `Authorization: Bearer ...`), `http_method` (POST or
    PUT), `username`/`password` (basic auth), `disable_ssl_verification`, and optionally
    `notification_type: webhook`. Messages never echo the URL or a header value."""
    if "notification_url" in entry:
        # A URL was the old place for the receiver's token; refuse it rather than ignore it.
        raise TemplateError(
            f"template {name!r}: notification_url is not read; use notification: "
            "{url: ..., headers: {Authorization: Bearer ...}}"
        )
    raw = entry.get("notification")
    if raw is None:
        return None
    where = f"template {name!r}: notification"
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be a mapping")
    unknown = sorted(str(key) for key in raw if key not in NOTIFICATION_KEYS)
    if unknown:
        raise TemplateError(f"{where}: unknown keys {unknown}")
    if raw.get("notification_type", "webhook") != "webhook":
        raise TemplateError(f"{where}: only notification_type webhook is supported")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TemplateError(f"{where}: url must be an http:// or https:// URL")
    if "@" in url.split("/", 3)[2]:
        # Stricter than AWX: credentials belong in username/password or headers.
        raise TemplateError(f"{where}: url must not carry user info; use username/password")
    method = str(raw.get("http_method") or "POST").upper()
    if method not in NOTIFICATION_METHODS:
        raise TemplateError(f"{where}: http_method must be one of {NOTIFICATION_METHODS}")
    username, password = raw.get("username") or "", raw.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str):
        raise TemplateError(f"{where}: username and password must be strings")
    headers = _notification_headers(where, raw.get("headers"))
    if (username or password) and any(key.lower() == "authorization" for key, _ in headers):
        raise TemplateError(f"{where}: an Authorization header or username/password, not both")
    return WebhookNotification(
        url=url,
        headers=headers,
        http_method=method,
        username=username,
        password=password,
        disable_ssl_verification=bool(raw.get("disable_ssl_verification", False)),
    )


def _notification_headers(where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: headers must be a mapping of names to strings")
    headers: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise TemplateError(f"{where}: headers must be a mapping of names to strings")
        if any(c in key + value for c in "\r\n"):
            raise TemplateError(f"{where}: header {key!r} holds a line break")
        headers.append((key, value))
    return tuple(headers)


def parse_extra_vars(value: Any) -> dict[str, Any]:
    """extra_vars as sent: a mapping, or a string holding a JSON or YAML mapping."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise LaunchRejected(
            {"extra_vars": [f"Input type `{type(value).__name__}` is not a dictionary"]}
        )
    try:
        parsed = json.loads(value)
    except ValueError as json_error:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as yaml_error:
            raise LaunchRejected(
                {"extra_vars": [f"Cannot parse as JSON ({json_error}) or YAML ({yaml_error})."]}
            ) from yaml_error
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise LaunchRejected(
            {"extra_vars": [f"Input type `{type(parsed).__name__}` is not a dictionary"]}
        )
    return parsed


def plan_launch(spec: TemplateSpec, body: Mapping[str, Any]) -> LaunchPlan:
    """Apply the prompt-on-launch rules to a launch body (reference §3)."""
    launch_vars = parse_extra_vars(body.get("extra_vars"))
    unprompted = sorted(k for k in body if k in PROMPT_FIELDS)
    if spec.kind == WORKFLOW_TEMPLATE:
        if launch_vars and not spec.ask_variables_on_launch:
            names = ", ".join(sorted(launch_vars))
            raise LaunchRejected(
                {
                    "extra_vars": [
                        f"Variables {names} are not allowed on launch. Check the Prompt "
                        "on Launch setting on the Workflow Job Template to include "
                        "Extra Variables."
                    ]
                }
            )
        if unprompted:
            raise LaunchRejected(
                {f: ["Field is not configured to prompt on launch."] for f in unprompted}
            )
    ignored: dict[str, Any] = {f: body[f] for f in unprompted}
    if launch_vars and not spec.ask_variables_on_launch:
        ignored["extra_vars"] = launch_vars
        launch_vars = {}
    return LaunchPlan(extra_vars={**spec.extra_vars, **launch_vars}, ignored_fields=ignored)


def node_extra_vars(node: TemplateSpec, workflow_vars: Mapping[str, Any]) -> dict[str, Any]:
    """Workflow variables override a node template's own, as AWX does for workflow nodes."""
    return {**node.extra_vars, **workflow_vars}


def runner_config_kwargs(
    spec: TemplateSpec,
    *,
    private_data_dir: Path,
    ident: str,
    bin_dir: str,
    path_env: str,
) -> dict[str, Any]:
    """Arguments for ansible_runner's RunnerConfig for one job of a job template.

    The variables are not among them: ansible-runner would put them on the command line as
    plain JSON, which Ansible templates. They go to the private data dir's extravars file
    (`extravars.document`), which ansible-runner passes on by itself.
    """
    playbook = Path(spec.playbook)
    kwargs: dict[str, Any] = {
        "private_data_dir": str(private_data_dir),
        "project_dir": str(playbook.parent),
        "playbook": str(playbook),
        "ident": ident,
        "envvars": {**BASE_JOB_ENV, "PATH": f"{bin_dir}:{path_env}" if path_env else bin_dir},
        "quiet": True,
        # One artifacts directory per job; rotation would scan siblings on every launch.
        "rotate_artifacts": 0,
    }
    if spec.inventory:
        kwargs["inventory"] = spec.inventory
    if spec.timeout:
        kwargs["timeout"] = spec.timeout
    return kwargs


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    job_explanation: str = ""
    result_traceback: str = ""


def job_outcome(
    *,
    returncode: int | None,
    cancel_requested: bool,
    timed_out: bool,
    failed_task: tuple[str, str] | None,
) -> Outcome:
    """Map how the playbook process ended to AWX's status and explanation (reference §4)."""
    if cancel_requested:
        return Outcome("canceled", "Job was canceled")
    if timed_out:
        return Outcome("failed", "Job terminated due to timeout")
    if returncode == 0:
        return Outcome("successful")
    if failed_task is not None:
        task, message = failed_task
        return Outcome("failed", f"Task {task!r} failed: {message}", message)
    return Outcome("failed", f"ansible-playbook exited with return code {returncode}")


def workflow_outcome(child_statuses: Sequence[str], cancel_requested: bool) -> Outcome:
    """A sequential workflow ends with its first unsuccessful node, or successful."""
    if cancel_requested:
        return Outcome("canceled", "Workflow job was canceled")
    for status in child_statuses:
        if status != "successful":
            return Outcome(
                "failed", "Previous Task Failed" if status != "canceled" else "A node was canceled"
            )
    return Outcome("successful")
