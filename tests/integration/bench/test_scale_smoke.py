"""benchmarks/scale.py end to end at a tiny N: it runs on the local stack with simulated jobs,
every lifecycle completes, and it prints the JSON document the issue names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

SCALE = Path(__file__).parents[3] / "benchmarks" / "scale.py"
HEADLINE = ("operator_cpu_ms_per_lifecycle", "api_writes_per_lifecycle")
PER_N = (
    "api_reads_per_lifecycle",
    "api_requests_per_lifecycle_by_verb",
    "api_requests_by_operation",
    "overhead_p50_ratio",
    "last_create_to_last_ready_s",
    "operator_peak_rss_mb",
    "apiserver_peak_rss_mb",
    "watch_p99_ms",
    "sentinel_delete_s_max",
)


def test_scale_benchmark_completes_every_lifecycle_and_prints_its_figures(
    tmp_path: Path,
) -> None:
    command = [sys.executable, str(SCALE), "--sizes", "5", "--run-seconds", "0.2"]
    command += ["--vm-boot-seconds", "0.2", "--timeout", "60", "--sustained-seconds", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["max_n"] == 5
    assert figures["jobs"] == "simulated"
    assert figures["all_lifecycles_completed"] is True
    (run,) = figures["runs"]
    assert run["lifecycles_completed"] == 5 and run["sentinels_completed"] == 5
    # The sentinels' deletions, sent right after the burst, completed (fairness figure).
    assert run["sentinel_delete_s_max"] >= run["sentinel_deprovision_job_s_max"] > 0
    for key in HEADLINE:
        assert figures[key] == run[key] and run[key] > 0, key
    for key in PER_N:
        assert key in run, key
    # The operator's writes are counted: a lifecycle cannot complete without status updates.
    assert run["api_requests_per_lifecycle_by_verb"].get("PUT", 0) >= 1
    assert 0 < run["overhead_p50_ratio"] <= run["overhead_p99_ratio"] < 1
    assert figures["burst_overhead_p99_ratio"] == run["overhead_p99_ratio"]
    # Capacity: the drain against the machine's limit, from the stack's CPU over the burst.
    assert figures["capacity_ratio"] == run["burst_capacity_ratio"]
    parts = run["burst_stack_cpu_ms_per_lifecycle_by_part"]
    assert set(parts) == {"operator", "apiserver", "automation", "simulator"}
    assert all(ms > 0 for ms in parts.values()), parts
    limit = figures["cores"] * 1000 / run["burst_stack_cpu_ms_per_lifecycle"]
    assert run["burst_machine_limit_lifecycles_per_s"] == pytest.approx(limit, rel=0.02)
    expected = run["burst_drain_lifecycles_per_s"] / run["burst_machine_limit_lifecycles_per_s"]
    assert 0 < figures["capacity_ratio"] == pytest.approx(expected, abs=0.01)
    # What the rest of the machine used meanwhile, and the ratio to the cores it left.
    other = run["burst_other_cpu_share"]
    assert 0 <= other < 1
    free_ratio = figures["capacity_ratio"] / (1 - other) if other < 1 else 1.0
    assert run["burst_capacity_ratio_of_free_cores"] == pytest.approx(min(free_ratio, 1.0), 0.05)
    # The sustained run: arrivals at 70% of that drain rate, each deleted once Ready.
    steady = figures["sustained"]
    assert steady["arrival_per_s"] == pytest.approx(0.7 * run["burst_drain_lifecycles_per_s"], 0.02)
    assert steady["lifecycles"] == max(1, round(steady["arrival_per_s"] * 2))
    assert steady["lifecycles_completed"] == steady["lifecycles"]
    assert figures["sustained_overhead_p99"] == steady["overhead_p99"]
    assert 0 < steady["overhead_p50"] <= steady["overhead_p99"] < 1
    assert figures["sustained_watch_p99_ms"] == steady["watch_p99_ms"] > 0
    # Where the cycles went: the six hops of a tail instance add up to its cycle, and its
    # overhead is what the two jobs leave of it (the jobs' times are the automation's own).
    tail = steady["tail"]
    assert set(tail["hop_ms"]) == {
        "create_to_launch",
        "provision_job",
        "job_end_to_ready",
        "delete_to_launch",
        "deprovision_job",
        "job_end_to_gone",
    }
    assert tail["worst"], tail
    for worst in tail["worst"]:
        hops = [worst[hop] for hop in tail["hop_ms"]]
        assert all(ms >= 0 for ms in hops), worst
        jobs = worst["provision_job"] + worst["deprovision_job"]
        assert worst["overhead"] == pytest.approx((sum(hops) - jobs) / sum(hops), abs=0.01)
        assert worst["overhead"] >= steady["overhead_p99"]
