"""Launch-time extra_vars are data: Jinja in them never runs (AWX's default policy).

AWX writes launch-time variables into the extravars file marked `!unsafe`; only top-level
variables saved on the job template itself (and left unchanged at launch) stay templatable
(ALLOW_JINJA_IN_EXTRA_VARS = "template"). Each hostile string here would touch its own marker
file if it were rendered, so a failure names the field that leaked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloudkit.local.automation import AutomationHandle, start_automation_service
from tests.contract.automation.automation_client import HERE, Api

pytestmark = pytest.mark.stack

SAVED = "{{ 'tem' ~ 'plate' }}"
"""The template's own variable: rendered, as AWX renders variables saved on a template."""


def jinja(markers: Path, field: str) -> str:
    return f"{{{{ lookup('ansible.builtin.pipe', 'touch {markers / field}') }}}}"


def hostile_probe(markers: Path) -> dict[str, Any]:
    """Jinja in a string, nested values, a list item and a dict key; other types alongside."""
    return {
        "text": jinja(markers, "text"),
        "nested": {"deeper": [jinja(markers, "list-item"), {"leaf": jinja(markers, "leaf")}]},
        jinja(markers, "key"): "value",
        "count": 3,
        "enabled": True,
        "nothing": None,
        "raw": "{% raw %}{{ not a template }}{% endraw %} and {# a comment #}",
    }


@pytest.fixture
async def echo_api(tmp_path: Path) -> AsyncIterator[Api]:
    templates: list[dict[str, Any]] = [
        {
            "name": "echo",
            "playbook": str(HERE / "playbooks" / "echo.yml"),
            "inventory": "localhost,",
            "extra_vars": {"saved": SAVED},
        },
        {"name": "echo pipeline", "kind": "workflow_job_template", "nodes": ["echo"]},
    ]
    handle: AutomationHandle = await start_automation_service(tmp_path / "state", templates)
    try:
        headers = {"Authorization": f"Bearer {handle.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            yield Api(session, handle.url)
    finally:
        await handle.stop()


def leaked(markers: Path) -> list[str]:
    """The fields whose Jinja ran: each touched its own marker file."""
    return sorted(path.name for path in markers.iterdir())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


async def run_echo(api: Api, extra_vars: Any, echo_file: Path) -> dict[str, Any]:
    launched = await api.launch("echo", {"extra_vars": extra_vars})
    job = await api.wait_status(launched["job"], within_s=60)
    _, stdout = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "txt"})
    assert job["status"] == "successful", stdout
    seen: dict[str, Any] = read_json(echo_file)
    return seen


async def test_launch_time_variables_reach_the_playbook_as_data(
    echo_api: Api, markers: Path, tmp_path: Path
) -> None:
    echo_file = tmp_path / "seen.json"
    probe = hostile_probe(markers)
    seen = await run_echo(echo_api, {"probe": probe, "echo_file": str(echo_file)}, echo_file)
    assert leaked(markers) == []
    assert seen == {"probe": probe, "saved": "template"}


async def test_extra_vars_sent_as_a_string_are_data_too(
    echo_api: Api, markers: Path, tmp_path: Path
) -> None:
    echo_file = tmp_path / "seen.json"
    probe = hostile_probe(markers)
    body = json.dumps({"probe": probe, "echo_file": str(echo_file)})
    seen = await run_echo(echo_api, body, echo_file)
    assert leaked(markers) == []
    assert seen["probe"] == probe


async def test_a_template_variable_overridden_at_launch_is_data(
    echo_api: Api, markers: Path, tmp_path: Path
) -> None:
    """Only the template's own value is trusted: the same name with a launch value is not."""
    echo_file = tmp_path / "seen.json"
    hostile = jinja(markers, "saved-overridden")
    seen = await run_echo(echo_api, {"saved": hostile, "echo_file": str(echo_file)}, echo_file)
    assert leaked(markers) == []
    assert seen == {"probe": None, "saved": hostile}


async def test_workflow_launch_variables_are_data_in_every_node(
    echo_api: Api, markers: Path, tmp_path: Path
) -> None:
    echo_file = tmp_path / "seen.json"
    probe = hostile_probe(markers)
    launched = await echo_api.launch(
        "echo pipeline",
        {"extra_vars": {"probe": probe, "echo_file": str(echo_file)}},
        kind="workflow_job_templates",
    )
    workflow = await echo_api.wait_status(
        launched["workflow_job"], collection="workflow_jobs", within_s=60
    )
    assert workflow["status"] == "successful", workflow
    assert leaked(markers) == []
    assert read_json(echo_file) == {"probe": probe, "saved": "template"}
