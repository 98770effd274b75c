"""`cloudkit bench latency` run as users run it, small: its CSV, summary and PNG checked for
content, and a failing lifecycle named in a non-zero exit.

The small run starts a fresh local stack per provider (one round, one lifecycle each, a
one-second VM boot): the smallest run whose files hold every column, both providers and their
comparison (each lifecycle is a real provision and deprovision, the costliest part of the run).
The failing run measures a deployed operator (--kubeconfig) whose provision template fails: a
stack (`tests.harness.operators`) whose simulated provision template is changed to fail; its two
lifecycles at once (one watch serves both) are each named, apart.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudkit.bench.report import LifecycleRow, comparison, read_rows
from tests.harness.operators import OperatorStack, operator_stack, wait_until
from tests.harness.stack_lab import PROVISION_TEMPLATE

pytestmark = pytest.mark.stack

CLOUDKIT = [sys.executable, "-m", "cloudkit.cli"]
COLUMNS = {
    "provider",
    "run",
    "instance",
    "started_at",
    "ok",
    "provision_s",
    "deprovision_s",
    "total_s",
    "provision_job_s",
    "deprovision_job_s",
    "overhead_s",
}


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLOUDKIT, "bench", "latency", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(900)  # two stacks, EDA's JVM among them: minutes on a busy machine
def test_small_run_writes_csv_summary_and_png(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = bench(
        "--runs", "1", "--parallel", "1", "--vm-boot-seconds", "1", "--out", str(out), timeout=840
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    with (out / "latency_results.csv").open() as handle:
        header = next(csv.reader(handle))
    assert set(header) >= COLUMNS
    rows = read_rows(out / "latency_results.csv")
    assert sorted((r.provider, r.run) for r in rows) == [("aap", 1), ("eda", 1)]
    assert len({r.instance for r in rows}) == 2 and all(r.ok for r in rows)
    for r in rows:
        assert r.provision_s and r.deprovision_s and r.total_s
        assert r.total_s == pytest.approx(r.provision_s + r.deprovision_s, abs=0.002)
        assert r.provision_job_s and r.deprovision_job_s and r.overhead_s is not None
        parts = r.provision_job_s + r.deprovision_job_s + r.overhead_s
        assert parts == pytest.approx(r.total_s, abs=0.003)

    summary = (out / "latency_summary.md").read_text()
    for sentence in _recomputed_sentences(rows):
        assert sentence in summary
    assert "% better overall performance" in summary and "provisioned" in summary
    assert "cloudkit bench latency --runs 1 --parallel 1" in summary
    assert re.search(r"Date \(UTC\): \d{4}-\d\d-\d\d", summary) and "CPUs" in summary
    for provider in ("AAP", "EDA"):
        for phase in ("provision", "deprovision", "total cycle"):
            assert re.search(rf"\| {provider} \| {phase} \|( [\d.]+ \|){{4}}", summary), phase

    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 200_000


def _recomputed_sentences(rows: list[LifecycleRow]) -> list[str]:
    """The summary's percentages, recomputed from the CSV by hand (means, % of the slower)."""
    sentences = []
    for column, what in (
        ("total_s", "overall"),
        ("provision_s", "provisioned"),
        ("deprovision_s", "deprovisioned"),
    ):
        means = {}
        for provider in ("aap", "eda"):
            values = [getattr(r, column) for r in rows if r.provider == provider]
            means[provider] = sum(values) / len(values)
        fast, slow = sorted(means, key=means.__getitem__)
        pct = 100 * (means[slow] - means[fast]) / means[slow]
        f, s = means[fast], means[slow]
        if what == "overall":
            sentences.append(
                f"{fast.upper()} showed {pct:.1f}% better overall performance "
                f"({f:.1f} s vs {s:.1f} s total cycle time)"
            )
        else:
            sentences.append(f"{fast.upper()} {what} {pct:.1f}% faster ({f:.1f} s vs {s:.1f} s)")
    assert sentences == comparison(rows)
    return sentences


def fail_provisioning(entries: list[dict[str, Any]]) -> None:
    provision = next(e for e in entries if e["name"] == PROVISION_TEMPLATE)
    provision["simulate"]["outcome"] = "failed"


@pytest.fixture
def failing_stack(tmp_path: Path) -> Iterator[OperatorStack]:
    with operator_stack(tmp_path / "stack") as stack:
        stack.edit_templates(fail_provisioning)
        yield stack


def test_a_failing_lifecycle_exits_non_zero_and_is_named(
    failing_stack: OperatorStack, tmp_path: Path
) -> None:
    wait_until(failing_stack.stack_operator_healthy, timeout=180, what="operator health")
    out = tmp_path / "out"
    kubeconfig = str(failing_stack.kubeconfig)
    proc = bench(
        "--kubeconfig",
        kubeconfig,
        "--runs",
        "1",
        "--parallel",
        "2",
        "--out",
        str(out),
        "--timeout",
        "60",
    )
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_rows(out / "latency_results.csv")
    assert len(rows) == 2 and len({r.instance for r in rows}) == 2
    summary = (out / "latency_summary.md").read_text()
    assert "lifecycle failed" in proc.stderr and "| AAP |" not in summary  # nothing averaged
    for row in rows:
        assert not row.ok and row.provider == "aap", row
        assert row.total_s is None and "Failed" in row.error, row
        assert row.instance in proc.stderr and row.instance in summary
