"""`cloudkit bench latency`: rounds of parallel lifecycles per provider, then CSV, summary, PNG.

For each round, each target in turn runs `parallel` simultaneous lifecycles; the order of the
targets alternates from round to round, so machine noise (another process, a warm cache) falls
on every provider alike. A target is a kubeconfig: the command line starts a fresh local stack
per provider and hands its kubeconfig here, or names one cluster whose deployed operator is
measured (its provider is read from the jobs it records). This module never starts a stack.

Exit code 0 only when every lifecycle completed; the failures are named on the console and in
the summary, and no figure includes them.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from kubernetes import client, config
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cloudkit.bench.lifecycle import InstanceWatch, LifecycleSpec, run_lifecycle
from cloudkit.bench.plot import write_plot
from cloudkit.bench.report import (
    PLOT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    LifecycleRow,
    RunContext,
    read_rows,
    summary_markdown,
    write_rows,
)


@dataclass(frozen=True)
class Target:
    """Where lifecycles run: a kubeconfig and what to call it."""

    kubeconfig: Path
    provider: str
    """The provider of a local stack, or "" for a deployed operator (read from its jobs)."""
    deployment: str = "local"


@dataclass(frozen=True)
class LatencyOptions:
    runs: int = 3
    parallel: int = 3
    out: Path = Path(".")
    namespace: str = "cloudkit-computeinstance"
    timeout_s: float = 600.0
    vm_boot_seconds: float | None = None
    command: str = "cloudkit bench latency"
    append: bool = False
    """Append to an existing CSV (a deployment measured after another) instead of replacing it;
    the summary and the PNG then cover every row of the CSV."""


@dataclass
class _Session:
    target: Target
    custom: client.CustomObjectsApi
    watcher: InstanceWatch
    task: TaskID | None = None

    @property
    def name(self) -> str:
        return self.target.provider or self.target.deployment


def run_latency(targets: Sequence[Target], options: LatencyOptions, console: Console) -> int:
    """Run the experiment and write the three files under `options.out`; the exit code."""
    options.out.mkdir(parents=True, exist_ok=True)
    sessions = [_open(target, options) for target in targets]
    rows: list[LifecycleRow] = []
    tag = uuid4().hex[:5]
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            for session in sessions:
                session.task = progress.add_task(
                    session.name, total=2 * options.runs * options.parallel, state="waiting"
                )
            for run in range(1, options.runs + 1):
                ordered = sessions if run % 2 else list(reversed(sessions))
                for session in ordered:
                    rows += _round(session, run, tag, options, progress)
    finally:
        for session in sessions:
            session.watcher.stop()
    return _report(rows, options, console)


def _open(target: Target, options: LatencyOptions) -> _Session:
    api = config.new_client_from_config(config_file=str(target.kubeconfig))  # type: ignore[no-untyped-call]
    custom = client.CustomObjectsApi(api)
    watcher = InstanceWatch(custom, options.namespace)
    watcher.start()
    return _Session(target, custom, watcher)


def _round(
    session: _Session, run: int, tag: str, options: LatencyOptions, progress: Progress
) -> list[LifecycleRow]:
    """`options.parallel` lifecycles at once on one target."""
    assert session.task is not None
    task = session.task
    label = session.target.provider or "deployed"
    specs = [
        LifecycleSpec(
            provider=session.target.provider,
            run=run,
            instance=f"lat-{label}-{tag}-r{run}-{i}",
            deployment=session.target.deployment,
            timeout_s=options.timeout_s,
        )
        for i in range(1, options.parallel + 1)
    ]
    progress.update(task, state=f"run {run}/{options.runs}: {len(specs)} lifecycles")

    def step(_: str) -> None:
        progress.advance(task)

    with ThreadPoolExecutor(max_workers=len(specs), thread_name_prefix="lifecycle") as pool:
        futures = [
            pool.submit(run_lifecycle, session.custom, session.watcher, spec, step)
            for spec in specs
        ]
        rows = [future.result() for future in futures]
    failed = sum(1 for row in rows if not row.ok)
    progress.update(
        task, state=f"run {run}/{options.runs} done" + (f", {failed} failed" if failed else "")
    )
    return rows


def _report(rows: list[LifecycleRow], options: LatencyOptions, console: Console) -> int:
    results = options.out / RESULTS_FILE
    write_rows(results, rows, append=options.append)
    # Figures come from the CSV as written, so they can be recomputed from it.
    every_row = read_rows(results)
    context = RunContext(
        command=options.command,
        machine=machine(),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        vm_boot_seconds=options.vm_boot_seconds,
    )
    summary = summary_markdown(every_row, context)
    (options.out / SUMMARY_FILE).write_text(summary)
    write_plot(options.out / PLOT_FILE, every_row, "create → Ready, delete → gone")
    console.print(summary, markup=False, highlight=False, soft_wrap=True)
    failed = [row for row in rows if not row.ok]
    for row in failed:
        console.print(f"[red]lifecycle failed[/red]: {row.provider} {row.instance}: {row.error}")
    return 1 if failed else 0


def machine() -> str:
    """CPU model, CPU count, OS and Python: enough to compare runs, nothing identifying."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
