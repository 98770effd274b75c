"""The latency experiment's pure parts: marks from watch events, CSV round trip, statistics and
the sentences users quote, failed lifecycles kept out of every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.bench.lifecycle import LifecycleSpec, Marks, completed_row, record
from cloudkit.bench.report import (
    LifecycleRow,
    RunContext,
    comparison,
    cycle_ratio,
    read_rows,
    summary_markdown,
    write_rows,
)


def row(provider: str, provision: float, deprovision: float, **extra: Any) -> LifecycleRow:
    fields: dict[str, Any] = {
        "provider": provider,
        "run": 1,
        "instance": f"{provider}-{provision}",
        "started_at": "2026-01-01T00:00:00.000Z",
        "ok": True,
        "provision_s": provision,
        "deprovision_s": deprovision,
        "total_s": provision + deprovision,
        "provision_job_s": provision - 1,
        "deprovision_job_s": deprovision - 1,
        "overhead_s": 2.0,
    }
    fields.update(extra)
    return LifecycleRow(**fields)


def test_the_seed_sentences_come_out_of_the_seed_figures() -> None:
    """Upstream's quoted run: AAP 150.7 + 115.3 s, EDA 157.3 + 74.7 s."""
    rows = [row("aap", 150.7, 115.3), row("eda", 157.3, 74.7)]
    assert comparison(rows) == [
        "EDA showed 12.8% better overall performance (232.0 s vs 266.0 s total cycle time)",
        "AAP provisioned 4.2% faster (150.7 s vs 157.3 s)",
        "EDA deprovisioned 35.2% faster (74.7 s vs 115.3 s)",
    ]
    assert cycle_ratio(rows, "aap", "eda") == pytest.approx(266.0 / 232.0)


def test_failed_lifecycles_enter_no_figure_and_are_named() -> None:
    # Even with figures (as a partly measured lifecycle would have), a failure counts nowhere.
    failed = row("aap", 99.0, 1.0, ok=False, error="boom", instance="lat-aap-x-r2-1")
    rows = [row("aap", 10.0, 5.0), failed, row("eda", 20.0, 5.0)]
    assert comparison(rows) == comparison([rows[0], rows[2]])
    text = summary_markdown(rows, RunContext("cloudkit bench latency", "m", "d"))
    assert "lat-aap-x-r2-1" in text and "boom" in text
    assert "| AAP | total cycle | 15.0 | 15.0 | 15.0 | 15.0 |" in text


def test_csv_round_trip_and_append_keeps_one_header(tmp_path: Path) -> None:
    path = tmp_path / "latency_results.csv"
    first = [row("aap", 1.25, 2.5), LifecycleRow("eda", 1, "i", "t", ok=False, error="e")]
    write_rows(path, first, append=True)  # nothing to append to: a new file
    write_rows(path, [row("eda", 3.0, 4.0)], append=True)
    assert path.read_text().count("provider,run,instance") == 1
    assert read_rows(path) == [*first, row("eda", 3.0, 4.0)]
    write_rows(path, [row("eda", 3.0, 4.0)], append=False)
    assert len(read_rows(path)) == 1


def event(**status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = status.pop("meta", {})
    return {"metadata": {"name": "ci", **meta}, "status": status}


def test_marks_take_the_first_sighting_of_each_step() -> None:
    marks = Marks()
    record(marks, "ADDED", event(), 0.0)
    record(marks, "MODIFIED", event(provisionJob={"id": "", "state": "Pending"}), 0.5)
    assert not marks.provision_launched  # an intent is not a launch
    running = {"id": "7", "state": "Running", "provider": "aap"}
    with_finalizer = {"finalizers": [names.OPERATOR_FINALIZER, names.AUTOMATION_FINALIZER]}
    record(marks, "MODIFIED", event(provisionJob=running, meta=with_finalizer), 1.0)
    record(marks, "MODIFIED", event(provisionJob=running, meta=with_finalizer), 2.0)
    annotated = {
        **with_finalizer,
        "annotations": {names.RECONCILED_CONFIG_VERSION_ANNOTATION: "abc"},
    }
    record(marks, "MODIFIED", event(desiredConfigVersion="abc", meta=annotated), 5.0)
    record(marks, "MODIFIED", event(phase="Ready", desiredConfigVersion="abc", meta=annotated), 6)
    assert (marks.provision_launched, marks.provision_done, marks.ready) == (1.0, 5.0, 6)
    assert marks.provider == "aap"
    deleting = {**with_finalizer, "deletionTimestamp": "2026-01-01T00:00:09Z"}
    record(marks, "MODIFIED", event(phase="Ready", meta=deleting), 9.0)
    assert not marks.deprovision_done
    record(marks, "MODIFIED", event(deprovisionJob={"id": "8"}, meta=deleting), 10.0)
    released = {"finalizers": [names.OPERATOR_FINALIZER], "deletionTimestamp": "x"}
    record(marks, "MODIFIED", event(deprovisionJob={"id": "8"}, meta=released), 14.0)
    record(marks, "DELETED", event(), 15.0)
    assert (marks.deprovision_launched, marks.deprovision_done, marks.gone) == (10.0, 14.0, 15.0)


def test_phase_failed_is_a_failure_with_the_jobs_message() -> None:
    marks = Marks()
    failed_job = {"id": "3", "state": "Failed", "message": "failed: deliberate"}
    record(marks, "MODIFIED", event(phase="Failed", provisionJob=failed_job), 1.0)
    assert marks.failed == "failed: deliberate" and marks.ready is None


def test_the_overhead_s_four_hops_sum_to_it_and_are_reported_in_ms(tmp_path: Path) -> None:
    marks = Marks(
        provider="aap",
        provision_launched=0.2,
        provision_done=10.0,
        ready=10.7,
        deprovision_launched=20.05,
        deprovision_done=25.0,
        gone=25.04,
    )
    spec = LifecycleSpec("aap", 1, "lat-aap-x-r1-1", "local", 60.0)
    done = completed_row(spec, "t", marks, created=0.0, deleted=20.0)
    hops = (
        done.launch_provision_s,
        done.ready_after_mark_s,
        done.launch_deprovision_s,
        done.gone_after_mark_s,
    )
    assert hops == (0.2, 0.7, 0.05, 0.04)
    assert done.overhead_s == pytest.approx(sum(hops))
    path = tmp_path / "latency_results.csv"
    write_rows(path, [done], append=False)
    assert read_rows(path) == [done]
    text = summary_markdown([done], RunContext("cloudkit bench latency", "m", "d"))
    assert "| AAP | config-version annotation → Ready | 700 | 700 |" in text
    assert "| AAP | automation finalizer removed → gone | 40 | 40 |" in text
