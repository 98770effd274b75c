"""Workflows, notification webhooks, restarts and the `cloudkit automation` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from cloudkit.local.automation import start_automation_service
from cloudkit.local.automation.store import Store
from tests.contract.automation.automation_client import (
    TEMPLATES,
    Api,
    processes_with,
    slow_vars,
    wait_process,
    wait_sleeping,
)
from tests.waiting import until

pytestmark = pytest.mark.stack


async def test_workflow_runs_nodes_in_sequence(api: Api) -> None:
    body = {"extra_vars": {"who": "flow"}}
    launched = await api.launch("pipeline", body, "workflow_job_templates")
    assert launched["type"] == "workflow_job" and launched["workflow_job"] == launched["id"]
    assert "job" not in launched
    workflow = await api.wait_status(launched["id"], collection="workflow_jobs")
    assert workflow["status"] == "successful" and workflow["workflow_job_template"]
    _, nodes = await api.get(f"workflow_jobs/{workflow['id']}/workflow_nodes/")
    children = [n["summary_fields"]["job"] for n in nodes["results"]]
    assert [c["name"] for c in children] == ["ok", "strict"]
    assert all(c["status"] == "successful" for c in children)
    # A workflow id is not a job (reference: 404 under jobs/); unified_jobs serves both.
    assert (await api.get(f"jobs/{workflow['id']}/"))[0] == 404
    _, unified = await api.get("unified_jobs/", params={"id__in": str(workflow["id"])})
    assert unified["results"][0]["type"] == "workflow_job"
    first = (await api.get(f"jobs/{children[0]['id']}/"))[1]
    assert json.loads(first["extra_vars"]) == {"who": "flow"}


async def test_workflow_template_rejects_unprompted(api: Api) -> None:
    template = await api.template_id("strict pipeline", "workflow_job_templates")
    path = f"workflow_job_templates/{template}/launch/"
    status, body = await api.post(path, {"extra_vars": {"a": 1, "b": 2}})
    assert status == 400 and "Variables a, b are not allowed on launch" in body["extra_vars"][0]
    status, body = await api.post(path, {"limit": "x"})
    assert (status, body) == (400, {"limit": ["Field is not configured to prompt on launch."]})


async def test_workflow_cancel(tmp_path: Path) -> None:
    templates: list[dict[str, Any]] = [
        {"name": "slow", "playbook": str(TEMPLATES.parent / "playbooks/slow.yml")},
        {"name": "flow", "kind": "workflow_job_template", "nodes": ["slow", "slow"]},
    ]
    handle = await start_automation_service(tmp_path / "state", templates)
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {handle.token}"}
        ) as session:
            flow_api = Api(session, handle.url)
            launched = await flow_api.launch(
                "flow", {"extra_vars": slow_vars(tmp_path)}, "workflow_job_templates"
            )
            await flow_api.wait_status(launched["id"], {"running"}, collection="workflow_jobs")
            assert (await flow_api.post(f"workflow_jobs/{launched['id']}/cancel/"))[0] == 202
            workflow = await flow_api.wait_status(
                launched["id"], collection="workflow_jobs", within_s=5.0
            )
            assert workflow["status"] == "canceled"
            _, nodes = await flow_api.get(f"workflow_jobs/{launched['id']}/workflow_nodes/")
            assert [n["summary_fields"]["job"]["status"] for n in nodes["results"]] == ["canceled"]
    finally:
        await handle.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


async def test_notification_webhook_hears_the_start_and_the_end(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    playbook = str(TEMPLATES.parent / "playbooks/ok.yml")
    templates = [
        {"name": "noisy", "playbook": playbook, "notification": {"url": url}},
        {"name": "dead", "playbook": playbook, "notification": {"url": "http://127.0.0.1:9/x"}},
    ]
    handle = await start_automation_service(tmp_path / "state", templates)
    try:
        headers = {"Authorization": f"Bearer {handle.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            api = Api(session, handle.url)
            dead = await api.launch("dead")
            launched = await api.launch("noisy", {"extra_vars": {"who": "hook"}})
            await api.wait_status(launched["job"])
            assert (await api.wait_status(dead["job"]))["status"] == "successful"

            async def notified() -> list[dict[str, Any]]:
                return received

            await until(
                notified,
                lambda seen: bool(seen) and seen[-1]["status"] == "successful",
                within=10,
                what="the successful notification",
            )
    finally:
        await handle.stop()
    assert [n["status"] for n in received] == ["running", "successful"]  # started, success
    last = received[-1]
    assert last["id"] == launched["job"] and last["name"] == "noisy"
    assert last["url"] == f"/api/v2/jobs/{launched['job']}/"
    assert json.loads(last["extra_vars"]) == {"who": "hook"}


async def test_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await start_automation_service(state, TEMPLATES)
    headers = {"Authorization": f"Bearer {first.token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            api = Api(session, first.url)
            template = await api.template_id("fail")
            done = await api.wait_status((await api.launch("ok"))["job"])
    finally:
        await first.stop()
    # Simulate a crash in the middle of a run: a job left `running` in the store.
    store = Store(state / "automation.sqlite3")
    orphan = store.create_job(type="job", name="ok", template_id=1, extra_vars={})
    store.update_job(orphan["id"], status="running")
    queued = store.create_job(type="job", name="ok", template_id=1, extra_vars={"who": "queued"})
    store.close()

    second = await start_automation_service(state, TEMPLATES)
    try:
        assert second.token == first.token
        async with aiohttp.ClientSession(headers=headers) as session:
            api = Api(session, second.url)
            assert await api.template_id("fail") == template
            again = (await api.get(f"jobs/{done['id']}/"))[1]
            assert again["status"] == "successful" and again["finished"] == done["finished"]
            _, events = await api.get(f"jobs/{done['id']}/job_events/")
            assert events["count"] > 0
            reaped = (await api.get(f"jobs/{orphan['id']}/"))[1]
            assert reaped["status"] == "error" and reaped["finished"]
            assert "not present in the job queue" in reaped["job_explanation"]
            # A job that was only queued runs after the restart.
            assert (await api.wait_status(queued["id"]))["status"] == "successful"
            new = await api.launch("ok")
            assert new["job"] > queued["id"]
            await api.wait_status(new["job"])
    finally:
        await second.stop()


async def test_command_stops_on_sigterm_and_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    command = os.path.join(os.path.dirname(sys.executable), "cloudkit")
    arguments = ["automation", "--state-dir", str(state), "--templates", str(TEMPLATES)]
    process = await asyncio.create_subprocess_exec(
        command, *arguments, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        url = line.split()[2].removesuffix("/v2/")
        token = await asyncio.to_thread((state / "automation-token").read_text)
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token.strip()}"}
        ) as session:
            api = Api(session, url)
            variables = slow_vars(tmp_path)
            launched = await api.launch("slow", {"extra_vars": variables})
            await wait_sleeping(api, launched["job"])
            await wait_process(f"sleep {variables['sleep_s']}")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
        assert processes_with(f"sleep {variables['sleep_s']}") == []
        store = Store(state / "automation.sqlite3")
        assert (store.job(launched["job"]) or {})["status"] == "canceled"
        store.close()
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()


def test_templates_yaml_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    from cloudkit.local.automation.service import load_templates

    (tmp_path / "t.yml").write_text(
        yaml.safe_dump([{"name": "a", "playbook": "pb/x.yml", "inventory": "hosts.ini"}])
    )
    [spec] = load_templates(tmp_path / "t.yml")
    assert spec.playbook == str(tmp_path / "pb/x.yml")
    assert spec.inventory == str(tmp_path / "hosts.ini")
