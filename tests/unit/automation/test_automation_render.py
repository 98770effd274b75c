"""Pure rendering of stored jobs into AWX shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudkit.local.automation import render


def job(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": 5, "type": "job", "name": "t", "template_id": 2, "workflow_job_id": None,
        "status": "running", "created": "2026-01-01T00:00:00.000000Z",
        "started": "2026-01-01T00:00:01.000000Z", "finished": None, "canceled_on": None,
        "cancel_flag": 0, "job_explanation": "", "result_traceback": "tb", "extra_vars": "{}",
        "artifacts": "{}", "event_processing_finished": 0,
    }  # fmt: skip
    return {**row, **overrides}


def test_job_fields_and_prefix() -> None:
    now = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    body = render.job_body(job(), "/api/controller/v2", detail=True, now=now)
    assert body["url"] == "/api/controller/v2/jobs/5/"
    assert body["elapsed"] == 2.0 and body["failed"] is False
    assert body["result_traceback"] == "tb" and body["job_template"] == 2
    listed = render.job_body(job(), "/api/v2", detail=False)
    assert "result_traceback" not in listed


def test_failed_covers_error_and_canceled() -> None:
    for status, failed in (("failed", True), ("error", True), ("canceled", True),
                           ("successful", False)):  # fmt: skip
        assert render.job_body(job(status=status), "/api/v2", detail=False)["failed"] is failed


def test_workflow_job_shape() -> None:
    body = render.job_body(job(type="workflow_job"), "/api/v2", detail=False)
    assert body["url"] == "/api/v2/workflow_jobs/5/"
    assert body["workflow_job_template"] == 2 and "event_processing_finished" not in body


def test_event_stdout_truncation() -> None:
    event = {
        "job_id": 5, "counter": 1, "event": "verbose", "event_data": "{}", "failed": 0,
        "changed": 0, "uuid": "u", "parent_uuid": "", "host_name": "", "task": "",
        "stdout": "é" * 1000, "start_line": 0, "end_line": 1, "created": "x",
    }  # fmt: skip
    assert len(render.event_body(event, "/api/v2", truncate=True)["stdout"].encode()) <= 1024
    assert render.event_body(event, "/api/v2", truncate=False)["stdout"] == "é" * 1000


def test_strip_ansi() -> None:
    assert render.strip_ansi("\x1b[0;32mok\x1b[0m") == "ok"
