"""The official AWX CLI (`awx`, from awxkit) against the automation service, as an AWX user runs it.

awxkit reads the public API root, then builds every command from OPTIONS metadata: these
tests pass only while the service answers both as AWX does. Commands that wait (`--monitor`)
run side by side to keep the file fast (awxkit polls every 2.5 s at the least).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cloudkit.local.automation import AutomationHandle
from tests.contract.automation.automation_client import Api
from tests.contract.automation.awx_tools import Run, awx

pytestmark = pytest.mark.stack


def parsed(result: Run) -> Any:
    assert result.rc == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def trailing_json(result: Run) -> Any:
    """The response document `--monitor` prints after the job's output."""
    lines = result.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


async def test_list_get_launch_and_read_a_job(automation: AutomationHandle, api: Api) -> None:
    listed, got = await asyncio.gather(
        awx(automation, "job_templates", "list", "-f", "json"),
        awx(automation, "job_templates", "get", "ok", "-f", "json"),
    )
    templates, template = parsed(listed), parsed(got)
    assert {"ok", "fail", "slow", "strict"} <= {t["name"] for t in templates["results"]}
    assert "pipeline" not in {t["name"] for t in templates["results"]}
    assert template["name"] == "ok" and template["type"] == "job_template"

    launched = parsed(
        await awx(automation, "job_templates", "launch", "ok", "-e", '{"who": "cli"}', "-f", "json")
    )
    assert launched["type"] == "job" and launched["ignored_fields"] == {}
    job_id = launched["job"]
    await api.wait_status(job_id)

    by_status, by_template, detail, stdout, coloured = await asyncio.gather(
        awx(automation, "jobs", "list", "--status", "successful", "-f", "json"),
        # --job_template takes a name: awxkit resolves it through the templates list.
        awx(automation, "jobs", "list", "--job_template", "ok", "-f", "json"),
        awx(automation, "jobs", "get", str(job_id), "-f", "json"),
        awx(automation, "jobs", "stdout", str(job_id)),
        awx(automation, "--conf.color", "true", "jobs", "stdout", str(job_id)),
    )
    assert job_id in {j["id"] for j in parsed(by_status)["results"]}
    assert [j["id"] for j in parsed(by_template)["results"]] == [job_id]
    job = parsed(detail)
    assert job["status"] == "successful" and json.loads(job["extra_vars"]) == {"who": "cli"}
    # Plain text (format=txt_download), and raw (ansi_download) when colour is on.
    assert stdout.rc == 0 and "hello cli" in stdout.stdout and "PLAY RECAP" in stdout.stdout
    assert coloured.rc == 0 and "hello cli" in coloured.stdout


async def test_launch_monitor_follows_jobs_and_workflows(automation: AutomationHandle) -> None:
    ok, workflow = await asyncio.gather(
        awx(automation, "job_templates", "launch", "ok", "--monitor", "-f", "json"),
        awx(automation, "workflow_job_templates", "launch", "pipeline", "--monitor", "-f", "json"),
    )
    # The job's output comes from job_events/?order_by=start_line&start_line__gte=N.
    assert ok.rc == 0, ok.stderr
    assert "hello world" in ok.stdout and trailing_json(ok)["status"] == "successful"

    assert workflow.rc == 0, workflow.stderr
    # The spawned jobs come from unified_jobs/?unified_job_node__workflow_job=<id>.
    assert " - ok successful" in workflow.stdout and " - strict successful" in workflow.stdout
    workflow_id = trailing_json(workflow)["id"]
    detail = parsed(await awx(automation, "workflow_jobs", "get", str(workflow_id), "-f", "json"))
    assert detail["type"] == "workflow_job" and detail["status"] == "successful"


async def test_read_token_lists_but_cannot_launch_and_a_wrong_token_nothing(
    automation: AutomationHandle, api: Api
) -> None:
    listed, launch, wrong = await asyncio.gather(
        awx(automation, "jobs", "list", "-f", "json", token=automation.read_token),
        awx(automation, "job_templates", "launch", "ok", token=automation.read_token),
        awx(automation, "jobs", "list", token="not-the-token"),
    )
    assert parsed(listed)["count"] == 0
    # As against AWX with a read-scoped token: OPTIONS on launch/ offers no POST, which
    # awxkit reports as the bare KeyError "'POST'"; no job is started either way.
    assert launch.rc != 0 and "'POST'" in launch.stderr
    assert (await api.get("jobs/"))[1]["count"] == 0
    assert wrong.rc != 0 and "Valid credentials were not provided" in wrong.stderr
