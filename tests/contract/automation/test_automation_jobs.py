"""Jobs end to end: launch, poll, fail, cancel, purge, events and stdout (real ansible-runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudkit.local.automation import start_automation_service
from tests.contract.automation.automation_client import (
    TEMPLATES,
    Api,
    exists,
    processes_with,
    slow_vars,
    wait_process,
    wait_sleeping,
)

pytestmark = pytest.mark.stack


async def test_launch_poll_successful(api: Api) -> None:
    launched = await api.launch("ok", {"extra_vars": {"who": "contract"}})
    assert launched["type"] == "job" and launched["id"] == launched["job"]
    assert launched["status"] in {"pending", "waiting", "running"}
    assert launched["ignored_fields"] == {}
    job = await api.wait_status(launched["job"])
    assert job["status"] == "successful" and job["failed"] is False
    assert job["started"] and job["finished"] and job["elapsed"] > 0
    assert job["event_processing_finished"] is True
    assert '"who": "contract"' in job["extra_vars"]
    assert isinstance(job["extra_vars"], str) and job["result_traceback"] == ""
    for field in ("job_template", "launched_by", "canceled_on", "artifacts", "created"):
        assert field in job
    _, text = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "txt"})
    assert "hello contract" in text and "\x1b[" not in text
    # Playbooks run below the service's priority, so the API stays responsive under load.
    assert "niceness 10" in text


async def test_failing_playbook_reports_explanation(api: Api) -> None:
    launched = await api.launch("fail", {"extra_vars": {"who": "tests"}})
    job = await api.wait_status(launched["job"])
    assert job["status"] == "failed" and job["failed"] is True
    assert "deliberate failure for tests" in job["job_explanation"]
    assert "deliberate failure for tests" in job["result_traceback"]
    _, events = await api.get(f"jobs/{job['id']}/job_events/", params={"failed": "true"})
    assert [e["event"] for e in events["results"]] == ["runner_on_failed"]


async def test_cancel_running_job_stops_before_the_marker(api: Api, tmp_path: Path) -> None:
    variables = slow_vars(tmp_path)
    launched = await api.launch("slow", {"extra_vars": variables})
    job_id = launched["job"]
    await wait_sleeping(api, job_id)
    await wait_process(f"sleep {variables['sleep_s']}")
    status, can = await api.get(f"jobs/{job_id}/cancel/")
    assert (status, can) == (200, {"can_cancel": True})
    status, body = await api.post(f"jobs/{job_id}/cancel/")
    assert (status, body) == (202, "")
    # Well before the 30 s task could end: the marker proves the cancel stopped it. How fast a
    # cancel lands is a benchmark figure (benchmarks/automation.py), not a test deadline.
    job = await api.wait_status(job_id, within_s=20.0)
    assert job["status"] == "canceled" and job["failed"] is True and job["canceled_on"]
    assert not exists(variables["marker"])
    assert processes_with(f"sleep {variables['sleep_s']}") == []
    # Already canceled: 405 with DRF's body, and can_cancel is false.
    status, body = await api.post(f"jobs/{job_id}/cancel/")
    assert (status, body) == (405, {"detail": 'Method "POST" not allowed.'})
    assert await api.get(f"jobs/{job_id}/cancel/") == (200, {"can_cancel": False})


async def test_cancel_pending_job_is_immediate(tmp_path: Path) -> None:
    import aiohttp

    handle = await start_automation_service(tmp_path / "state", TEMPLATES, workers=1)
    try:
        headers = {"Authorization": f"Bearer {handle.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            api = Api(session, handle.url)
            busy = await api.launch("slow", {"extra_vars": slow_vars(tmp_path)})
            queued = await api.launch("ok")
            await api.wait_status(busy["job"], {"running"})
            assert (await api.get(f"jobs/{queued['job']}/"))[1]["status"] == "pending"
            assert (await api.post(f"jobs/{queued['job']}/cancel/"))[0] == 202
            job = (await api.get(f"jobs/{queued['job']}/"))[1]
            assert job["status"] == "canceled" and job["started"] is None
            assert (await api.post(f"jobs/{busy['job']}/cancel/"))[0] == 202
            await api.wait_status(busy["job"], within_s=20.0)
    finally:
        await handle.stop()


async def test_finished_job_cancel_405_and_purge_404(api: Api, tmp_path: Path) -> None:
    running = await api.launch("slow", {"extra_vars": slow_vars(tmp_path)})
    done = await api.wait_status((await api.launch("ok"))["job"])
    status, body = await api.post(f"jobs/{done['id']}/cancel/")
    assert (status, body) == (405, {"detail": 'Method "POST" not allowed.'})
    status, body = await api.delete(f"jobs/{running['job']}/")
    assert (status, body) == (403, {"detail": "Cannot delete running job resource."})
    assert await api.delete(f"jobs/{done['id']}/") == (204, "")
    assert await api.get(f"jobs/{done['id']}/") == (404, {"detail": "Not found."})
    assert (await api.delete(f"jobs/{done['id']}/"))[0] == 404
    await api.post(f"jobs/{running['job']}/cancel/")
    await api.wait_status(running["job"], within_s=20.0)


async def test_events_and_stdout_formats(api: Api) -> None:
    job = await api.wait_status((await api.launch("ok"))["job"])
    _, events = await api.get(f"jobs/{job['id']}/job_events/", params={"order_by": "counter"})
    names = [e["event"] for e in events["results"]]
    for expected in ("playbook_on_start", "playbook_on_task_start", "runner_on_ok"):
        assert expected in names
    assert names[-1] == "playbook_on_stats"
    counters = [e["counter"] for e in events["results"]]
    assert counters == sorted(counters)
    _, later = await api.get(
        f"jobs/{job['id']}/job_events/",
        params={"counter__gt": str(counters[1]), "order_by": "counter"},
    )
    assert [e["counter"] for e in later["results"]] == counters[2:]
    ok = next(e for e in events["results"] if e["event"] == "runner_on_ok")
    assert ok["host_name"] == "localhost" and ok["task"] == "Say hello"
    _, ansi = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "ansi"})
    _, as_json = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "json"})
    _, download = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "txt_download"})
    assert "PLAY RECAP" in ansi and "PLAY RECAP" in as_json["content"] and "PLAY RECAP" in download


async def test_event_stdout_truncated_unless_asked(api: Api) -> None:
    launched = await api.launch("ok", {"extra_vars": {"who": "x" * 3000}})
    job = await api.wait_status(launched["job"])
    path = f"jobs/{job['id']}/job_events/"
    _, cut = await api.get(path, params={"event": "runner_on_ok"})
    _, full = await api.get(path, params={"event": "runner_on_ok", "no_truncate": "1"})
    assert len(cut["results"][0]["stdout"].encode()) <= 1024
    assert len(full["results"][0]["stdout"]) > 3000


async def test_template_timeout_fails_the_job(api: Api, tmp_path: Path) -> None:
    variables = slow_vars(tmp_path)
    launched = await api.launch("slow with timeout", {"extra_vars": variables})
    job = await api.wait_status(launched["job"], within_s=15.0)
    assert job["status"] == "failed"
    assert job["job_explanation"] == "Job terminated due to timeout"
    assert not exists(variables["marker"])
    assert processes_with(f"sleep {variables['sleep_s']}") == []
