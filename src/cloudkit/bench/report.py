"""The latency experiment's results as files: one CSV row per lifecycle, the Markdown summary.

Pure: rows in, text out. The summary is computed from the rows as they read back from the CSV
(values rounded to milliseconds), so anyone can recompute every figure in it from the CSV.
Failed lifecycles are rows too (with their error), but never enter a statistic.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

RESULTS_FILE = "latency_results.csv"
SUMMARY_FILE = "latency_summary.md"
PLOT_FILE = "latency.png"


@dataclass(frozen=True)
class LifecycleRow:
    """One lifecycle: create → Ready, delete → gone. Durations in seconds, None if unknown.

    `provision_job_s` / `deprovision_job_s` are the automation's own time: from the job's
    launch recorded on the instance to the playbook's last mark on it (the config-version
    annotation; the removal of the automation finalizer). The same marks exist for AAP direct
    and EDA, on the local stack and on a cluster. `overhead_s` is the rest of the cycle: what
    the operator added (launch, noticing the job's end, releasing the finalizer).
    """

    provider: str
    run: int
    instance: str
    started_at: str
    """UTC ISO 8601 time of the create request."""
    ok: bool
    error: str = ""
    provision_s: float | None = None
    deprovision_s: float | None = None
    total_s: float | None = None
    provision_job_s: float | None = None
    deprovision_job_s: float | None = None
    overhead_s: float | None = None
    deployment: str = "local"
    """Which stack ran it: `local` or the kubeconfig's server."""
    launch_provision_s: float | None = None
    """The overhead's four hops, which sum to `overhead_s`: create request → provision launch
    recorded; the playbook's annotation → phase Ready; delete request → deprovision launch
    recorded; the automation finalizer removed → gone."""
    ready_after_mark_s: float | None = None
    launch_deprovision_s: float | None = None
    gone_after_mark_s: float | None = None


COLUMNS = tuple(f.name for f in fields(LifecycleRow))
HOPS = (
    ("launch_provision_s", "create → provision launch recorded"),
    ("ready_after_mark_s", "config-version annotation → Ready"),
    ("launch_deprovision_s", "delete → deprovision launch recorded"),
    ("gone_after_mark_s", "automation finalizer removed → gone"),
)
"""The operator overhead's hops, in the order a lifecycle meets them."""
PHASES = (
    ("provision_s", "provision"),
    ("deprovision_s", "deprovision"),
    ("total_s", "total cycle"),
    ("provision_job_s", "provision job"),
    ("deprovision_job_s", "deprovision job"),
    ("overhead_s", "operator overhead"),
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_rows(path: Path, rows: Iterable[LifecycleRow], *, append: bool) -> None:
    """Write (or append, keeping one header) the rows to the CSV at `path`."""
    exists = append and path.exists() and path.stat().st_size > 0
    with path.open("a" if exists else "w", newline="") as handle:
        writer = csv.writer(handle)
        if not exists:
            writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(getattr(row, name)) for name in COLUMNS])


def read_rows(path: Path) -> list[LifecycleRow]:
    with path.open(newline="") as handle:
        return [_parse(record) for record in csv.DictReader(handle)]


def _parse(record: dict[str, str]) -> LifecycleRow:
    def number(name: str) -> float | None:
        text = record.get(name) or ""
        return float(text) if text else None

    return LifecycleRow(
        provider=record["provider"],
        run=int(record["run"]),
        instance=record["instance"],
        started_at=record["started_at"],
        ok=record["ok"] == "true",
        error=record.get("error") or "",
        provision_s=number("provision_s"),
        deprovision_s=number("deprovision_s"),
        total_s=number("total_s"),
        provision_job_s=number("provision_job_s"),
        deprovision_job_s=number("deprovision_job_s"),
        overhead_s=number("overhead_s"),
        deployment=record.get("deployment") or "local",
        launch_provision_s=number("launch_provision_s"),
        ready_after_mark_s=number("ready_after_mark_s"),
        launch_deprovision_s=number("launch_deprovision_s"),
        gone_after_mark_s=number("gone_after_mark_s"),
    )


@dataclass(frozen=True)
class Stats:
    mean: float
    median: float
    minimum: float
    maximum: float
    n: int


def stats(values: Sequence[float]) -> Stats | None:
    if not values:
        return None
    return Stats(
        statistics.mean(values), statistics.median(values), min(values), max(values), len(values)
    )


def by_provider(rows: Iterable[LifecycleRow]) -> dict[str, list[LifecycleRow]]:
    """Completed lifecycles per provider, in order of first appearance."""
    grouped: dict[str, list[LifecycleRow]] = {}
    for row in rows:
        if row.ok:
            grouped.setdefault(row.provider, []).append(row)
    return grouped


def phase_stats(rows: Sequence[LifecycleRow], column: str) -> Stats | None:
    return stats([v for r in rows if (v := getattr(r, column)) is not None])


def _label(provider: str) -> str:
    return provider.upper()


def comparison(rows: Iterable[LifecycleRow]) -> list[str]:
    """The sentences users quote, for exactly two providers: who is how many percent faster
    overall, to provision, to deprovision (percent of the slower one's mean)."""
    grouped = by_provider(rows)
    if len(grouped) != 2:
        return []
    (a, rows_a), (b, rows_b) = grouped.items()
    sentences = []
    for column, template in (
        (
            "total_s",
            "{fast} showed {pct:.1f}% better overall performance "
            "({f:.1f} s vs {s:.1f} s total cycle time)",
        ),
        ("provision_s", "{fast} provisioned {pct:.1f}% faster ({f:.1f} s vs {s:.1f} s)"),
        ("deprovision_s", "{fast} deprovisioned {pct:.1f}% faster ({f:.1f} s vs {s:.1f} s)"),
    ):
        sa, sb = phase_stats(rows_a, column), phase_stats(rows_b, column)
        if sa is None or sb is None:
            continue
        (fast, f), (_, s) = sorted(((a, sa.mean), (b, sb.mean)), key=lambda item: item[1])
        pct = 100.0 * (s - f) / s if s > 0 else 0.0
        sentences.append(template.format(fast=_label(fast), pct=pct, f=f, s=s))
    return sentences


def cycle_ratio(rows: Iterable[LifecycleRow], numerator: str, denominator: str) -> float | None:
    """Mean total cycle of `numerator` ÷ that of `denominator` (e.g. aap ÷ eda)."""
    grouped = by_provider(rows)
    top = phase_stats(grouped.get(numerator, []), "total_s")
    bottom = phase_stats(grouped.get(denominator, []), "total_s")
    if top is None or bottom is None or bottom.mean <= 0:
        return None
    return top.mean / bottom.mean


def overhead_share(rows: Sequence[LifecycleRow]) -> float | None:
    """Mean operator overhead ÷ mean total cycle."""
    overhead, total = phase_stats(rows, "overhead_s"), phase_stats(rows, "total_s")
    if overhead is None or total is None or total.mean <= 0:
        return None
    return overhead.mean / total.mean


@dataclass(frozen=True)
class RunContext:
    command: str
    machine: str
    date: str
    vm_boot_seconds: float | None = None
    note: str = ""


def hop_lines(grouped: dict[str, list[LifecycleRow]]) -> list[str]:
    """The operator overhead by hop, in milliseconds (mean, max); nothing for rows without
    hops (a CSV written before they were recorded)."""
    table: list[str] = []
    for provider, provider_rows in grouped.items():
        for column, title in HOPS:
            found = phase_stats(provider_rows, column)
            if found is not None:
                table.append(
                    f"| {_label(provider)} | {title} | {1000 * found.mean:.0f} "
                    f"| {1000 * found.maximum:.0f} |"
                )
    if not table:
        return []
    head = ["", "Operator overhead by hop, milliseconds:", ""]
    return [*head, "| provider | hop | mean | max |", "|---|---|---|---|", *table]


def summary_markdown(rows: Sequence[LifecycleRow], context: RunContext) -> str:
    grouped = by_provider(rows)
    failed = [r for r in rows if not r.ok]
    lines = ["# Provider latency: create → Ready, delete → gone", ""]
    sentences = comparison(rows)
    if sentences:
        lines += ["; ".join(sentences) + ".", ""]
    ratio = cycle_ratio(rows, "aap", "eda")
    if ratio is not None:
        lines += [f"AAP direct ÷ EDA, mean total cycle: **{ratio:.3f}**.", ""]
    lines += [
        f"- Command: `{context.command}`",
        f"- Machine: {context.machine}",
        f"- Date (UTC): {context.date}",
    ]
    if context.vm_boot_seconds is not None:
        lines.append(f"- VM boot delay: {context.vm_boot_seconds:g} s (both providers)")
    counts = ", ".join(f"{_label(p)} {len(r)}" for p, r in grouped.items()) or "none"
    lines.append(f"- Completed lifecycles: {counts}; failed: {len(failed)}")
    if context.note:
        lines.append(f"- {context.note}")
    lines += ["", "Seconds per lifecycle (completed lifecycles only):", ""]
    lines += ["| provider | phase | mean | median | min | max |", "|---|---|---|---|---|---|"]
    for provider, provider_rows in grouped.items():
        for column, title in PHASES:
            found = phase_stats(provider_rows, column)
            if found is not None:
                lines.append(
                    f"| {_label(provider)} | {title} | {found.mean:.1f} | {found.median:.1f} "
                    f"| {found.minimum:.1f} | {found.maximum:.1f} |"
                )
    lines += hop_lines(grouped)
    lines.append("")
    for provider, provider_rows in grouped.items():
        share = overhead_share(provider_rows)
        if share is not None:
            lines.append(f"- {_label(provider)} operator overhead: {100 * share:.1f}% of its cycle")
    if failed:
        lines += ["", "Failed lifecycles (not in any figure above):", ""]
        lines += [f"- {r.provider} run {r.run} `{r.instance}`: {r.error}" for r in failed]
    lines += [
        "",
        "Provision = create request → phase Ready; deprovision = delete request → gone. A job's",
        "time runs from its launch recorded on the instance to the playbook's last mark on it",
        "(config-version annotation; automation finalizer removed); the operator's overhead is",
        "the rest of the cycle.",
        "",
    ]
    return "\n".join(lines)
