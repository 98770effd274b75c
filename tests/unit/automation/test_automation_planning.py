"""Pure launch planning: extra-vars parsing, prompt rules, runner arguments, outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudkit.local.automation import planning
from cloudkit.local.automation.planning import (
    LaunchRejected,
    TemplateError,
    TemplateSpec,
    job_outcome,
    parse_extra_vars,
    parse_templates,
    plan_launch,
    workflow_outcome,
)

JOB = TemplateSpec(name="t", kind="job_template", playbook="/p/site.yml", extra_vars={"a": 1})
STRICT = TemplateSpec(
    name="s", kind="job_template", playbook="/p/site.yml", ask_variables_on_launch=False,
    extra_vars={"a": 1},
)  # fmt: skip
WORKFLOW = TemplateSpec(name="w", kind="workflow_job_template", ask_variables_on_launch=False)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (None, {}),
        ("", {}),
        ({"x": 1}, {"x": 1}),
        ('{"x": 1}', {"x": 1}),
        ("x: 1\ny: [2]", {"x": 1, "y": [2]}),
        ("---\n", {}),
    ],
)
def test_extra_vars_accepts_mappings(raw: object, parsed: dict[str, object]) -> None:
    assert parse_extra_vars(raw) == parsed


@pytest.mark.parametrize("raw", ["[1]", "plain", "{a: [", 3, ["x"]])
def test_extra_vars_rejects_non_mappings(raw: object) -> None:
    with pytest.raises(LaunchRejected) as caught:
        parse_extra_vars(raw)
    assert list(caught.value.body) == ["extra_vars"]


def test_unparsable_message_names_both_parsers() -> None:
    with pytest.raises(LaunchRejected) as caught:
        parse_extra_vars("{a: [")
    assert caught.value.body["extra_vars"][0].startswith("Cannot parse as JSON (")
    assert "or YAML (" in caught.value.body["extra_vars"][0]


def test_launch_vars_override_template_vars() -> None:
    plan = plan_launch(JOB, {"extra_vars": {"a": 2, "b": 3}})
    assert plan.extra_vars == {"a": 2, "b": 3} and plan.ignored_fields == {}


def test_unprompted_vars_are_ignored_not_rejected() -> None:
    plan = plan_launch(STRICT, {"extra_vars": {"a": 2}, "limit": "h1"})
    assert plan.extra_vars == {"a": 1}
    assert plan.ignored_fields == {"extra_vars": {"a": 2}, "limit": "h1"}


def test_workflow_rejects_unprompted_vars_and_fields() -> None:
    with pytest.raises(LaunchRejected) as caught:
        plan_launch(WORKFLOW, {"extra_vars": {"b": 1, "a": 1}})
    assert caught.value.body["extra_vars"][0].startswith("Variables a, b are not allowed")
    with pytest.raises(LaunchRejected) as caught:
        plan_launch(WORKFLOW, {"inventory": 3})
    assert caught.value.body == {"inventory": ["Field is not configured to prompt on launch."]}


def test_templates_resolve_paths_and_check_nodes() -> None:
    specs = parse_templates(
        [
            {"name": "a", "playbook": "pb.yml", "inventory": "localhost,"},
            {"name": "w", "kind": "workflow_job_template", "nodes": ["a"]},
        ],
        Path("/base"),
    )
    assert specs[0].playbook == "/base/pb.yml" and specs[0].inventory == "localhost,"
    assert specs[0].ask_variables_on_launch is True
    assert TemplateSpec.from_json(specs[1].to_json()) == specs[1]
    with pytest.raises(TemplateError):
        parse_templates([{"name": "w", "kind": "workflow_job_template", "nodes": ["x"]}], Path())
    with pytest.raises(TemplateError):
        parse_templates([{"name": "a"}], Path())
    with pytest.raises(TemplateError):
        parse_templates({"name": "a"}, Path())


def test_runner_arguments() -> None:
    spec = TemplateSpec(name="t", kind="job_template", playbook="/p/site.yml", inventory="h,")
    kwargs = planning.runner_config_kwargs(
        spec, private_data_dir=Path("/s/jobs/7"), ident="7", bin_dir="/v/bin",
        path_env="/usr/bin",
    )  # fmt: skip
    assert kwargs["playbook"] == "/p/site.yml" and kwargs["project_dir"] == "/p"
    assert kwargs["inventory"] == "h,"
    # ansible-runner would pass these on the command line as plain (templatable) JSON.
    assert "extravars" not in kwargs
    assert kwargs["envvars"]["PATH"] == "/v/bin:/usr/bin"
    assert kwargs["envvars"]["ANSIBLE_HOST_KEY_CHECKING"] == "False"
    assert "timeout" not in kwargs


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"returncode": 0, "cancel_requested": False, "timed_out": False}, "successful"),
        ({"returncode": 2, "cancel_requested": False, "timed_out": False}, "failed"),
        ({"returncode": -2, "cancel_requested": True, "timed_out": False}, "canceled"),
        ({"returncode": -9, "cancel_requested": False, "timed_out": True}, "failed"),
    ],
)
def test_job_outcome(kwargs: dict[str, object], status: str) -> None:
    assert job_outcome(failed_task=None, **kwargs).status == status  # type: ignore[arg-type]


def test_failed_task_explains() -> None:
    outcome = job_outcome(
        returncode=2, cancel_requested=False, timed_out=False, failed_task=("Boot", "no disk")
    )
    assert outcome.job_explanation == "Task 'Boot' failed: no disk"
    assert outcome.result_traceback == "no disk"
    timeout = job_outcome(returncode=-9, cancel_requested=False, timed_out=True, failed_task=None)
    assert timeout.job_explanation == "Job terminated due to timeout"


def test_workflow_outcome() -> None:
    assert workflow_outcome(["successful", "successful"], False).status == "successful"
    assert workflow_outcome(["successful", "failed"], False).status == "failed"
    assert workflow_outcome(["successful"], True).status == "canceled"
