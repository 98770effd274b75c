"""The CPU each test costs: a pytest plugin that measures and reports it, beside the wall time.

Wall time lies on a loaded machine (a test waiting on a stack looks slow while costing nothing);
CPU seconds are what the suite's parallel workers compete for. Each phase of a test (setup,
call, teardown) is measured with `resource.getrusage` as the worker's own CPU (all its threads:
the servers tests run on loop threads count) plus that of the children it reaped during the
phase (stack processes, ansible-runner, kubectl, mutant runs). A module- or session-scoped
fixture therefore lands in the setup of the first test that uses it and in the teardown of the
last, which is where its processes are reaped: a long-lived child's CPU is counted when it
exits. Descendants orphaned to init are not counted (none of the stack's are).

`--cpu-top N` prints the N costliest tests and files after the run; `--cpu-json PATH` writes
every test's figures. Under pytest-xdist each worker measures its own tests and the figures
travel on the reports to the controller, with each worker's CPU outside tests (start-up,
collection, imports).
"""

from __future__ import annotations

import json
import resource
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_PHASE_CPU = pytest.StashKey[float]()
_LAST_ON_WORKER = pytest.StashKey[bool]()
_WORKER_OUTSIDE = "cloudkit_cpu_outside_tests_s"


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it has reaped, so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


@dataclass
class CpuLedger:
    """Figures per test id (CPU and wall per phase) and per worker (CPU outside tests)."""

    cpu: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    wall: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    outside: dict[str, float] = field(default_factory=dict)
    session_end: set[str] = field(default_factory=set)
    """Tests whose teardown also stopped the session's fixtures (the last of a process)."""
    measured_in_tests: float = 0.0
    """This process's own sum over phases (a worker's, or the whole run's without xdist)."""

    def add(self, report: pytest.TestReport) -> None:
        spent = getattr(report, "cpu_s", None)
        if spent is None:
            return
        self.cpu[report.nodeid][report.when] = float(spent)
        self.wall[report.nodeid][report.when] = float(report.duration)
        if getattr(report, "cpu_session_end", False):
            self.session_end.add(report.nodeid)

    def total(self, nodeid: str) -> float:
        return sum(self.cpu[nodeid].values())

    def by_file(self) -> dict[str, float]:
        files: dict[str, float] = defaultdict(float)
        for nodeid in self.cpu:
            files[nodeid.split("::", 1)[0]] += self.total(nodeid)
        return files

    def as_json(self) -> dict[str, Any]:
        return {
            "cpu_s_in_tests": round(sum(self.total(n) for n in self.cpu), 3),
            "cpu_s_outside_tests": {w: round(s, 3) for w, s in sorted(self.outside.items())},
            "files": {f: round(s, 3) for f, s in sorted(self.by_file().items())},
            "tests": {
                nodeid: {
                    "cpu_s": {k: round(v, 3) for k, v in phases.items()},
                    "wall_s": {k: round(v, 3) for k, v in self.wall[nodeid].items()},
                }
                for nodeid, phases in sorted(self.cpu.items())
            },
        }


_ledger = CpuLedger()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cpu", "CPU per test (tests/harness/cpu_report.py)")
    group.addoption(
        "--cpu-top",
        type=int,
        default=0,
        metavar="N",
        help="print the N tests and files that used the most CPU (0: none)",
    )
    group.addoption(
        "--cpu-json", default=None, metavar="PATH", help="write every test's CPU and wall seconds"
    )


def _measure(item: pytest.Item) -> Generator[None, object, object]:
    before = cpu_seconds()
    try:
        return (yield)
    finally:
        spent = cpu_seconds() - before
        item.stash[_PHASE_CPU] = spent
        _ledger.measured_in_tests += spent


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _measure(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _measure(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    # The last test of a process also pays for stopping every session fixture: say so.
    item.stash[_LAST_ON_WORKER] = nextitem is None
    return (yield from _measure(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # An attribute of the report, because xdist carries a report's attributes to the
    # controller (TestReport(**extra)); user_properties would also land in JUnit files.
    report.cpu_s = item.stash.get(_PHASE_CPU, 0.0)  # type: ignore[attr-defined]
    if report.when == "teardown" and item.stash.get(_LAST_ON_WORKER, False):
        report.cpu_session_end = True  # type: ignore[attr-defined]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _ledger.add(report)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    outside = cpu_seconds() - _ledger.measured_in_tests
    if _is_worker(session.config):
        session.config.workeroutput[_WORKER_OUTSIDE] = outside  # type: ignore[attr-defined]
    elif not _ledger.outside:
        _ledger.outside["main"] = outside


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: a worker finished; keep its CPU outside tests."""
    spent = getattr(node, "workeroutput", {}).get(_WORKER_OUTSIDE)
    if spent is not None:
        _ledger.outside[str(node.gateway.id)] = float(spent)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    path = config.getoption("cpu_json")
    if path:
        Path(path).write_text(json.dumps(_ledger.as_json(), indent=1) + "\n")
    top = int(config.getoption("cpu_top"))
    if top <= 0 or not _ledger.cpu:
        return
    write = terminalreporter.write_line
    in_tests = sum(_ledger.total(n) for n in _ledger.cpu)
    outside = sum(_ledger.outside.values())
    terminalreporter.write_sep("=", f"CPU: {in_tests:.0f} s in tests, {outside:.0f} s outside")
    write("(setup includes module/session fixtures first used there; teardown, their stop)")
    ranked = sorted(_ledger.cpu, key=_ledger.total, reverse=True)[:top]
    for nodeid in ranked:
        phases = _ledger.cpu[nodeid]
        wall = sum(_ledger.wall[nodeid].values())
        split = " ".join(f"{k}={v:.1f}" for k, v in phases.items() if v >= 0.05)
        if nodeid in _ledger.session_end:
            split += " (teardown: also the session's fixtures)"
        write(f"{_ledger.total(nodeid):8.1f}s cpu {wall:8.1f}s wall  {nodeid}  [{split}]")
    terminalreporter.write_sep("-", "CPU by file")
    files = sorted(_ledger.by_file().items(), key=lambda kv: kv[1], reverse=True)[:top]
    for name, spent in files:
        write(f"{spent:8.1f}s cpu  {name}")
    if _ledger.outside:
        per_worker = " ".join(f"{w}={s:.0f}s" for w, s in sorted(_ledger.outside.items()))
        write(f"outside tests (start-up, collection): {per_worker}")
