"""The hand-out simulation (tests/harness/handout.py) on cases whose answer is known."""

from __future__ import annotations

import pytest

from tests.harness.handout import WorkUnit, makespan, units_of


def test_one_worker_runs_the_files_one_after_another() -> None:
    units = [WorkUnit("a", 10.0, 0.0), WorkUnit("b", 20.0, 0.0)]
    assert makespan(units, workers=1, cores=2)[0] == pytest.approx(30.0, abs=0.5)


def test_waiting_files_side_by_side_take_the_longest_one() -> None:
    units = [WorkUnit("a", 10.0, 0.0), WorkUnit("b", 20.0, 0.0)]
    assert makespan(units, workers=2, cores=2)[0] == pytest.approx(20.0, abs=0.5)


def test_files_that_need_more_cores_than_there_are_share_them() -> None:
    busy = [WorkUnit(name, 10.0, 10.0) for name in "abcd"]  # each keeps a core busy
    seconds, cores_busy = makespan(busy, workers=4, cores=2)
    assert seconds == pytest.approx(20.0, abs=0.5) and cores_busy == pytest.approx(2.0)


def test_a_reports_waits_are_its_wall_less_its_stretched_cpu() -> None:
    report: dict[str, object] = {
        "tests": {
            "tests/x.py::a": {"wall_s": {"call": 30.0}, "cpu_s": {"call": 10.0}},
            "tests/x.py::b": {"wall_s": {"setup": 5.0, "call": 5.0}, "cpu_s": {"call": 0.0}},
        }
    }
    (unit,) = units_of(report, stretch=2.0)
    assert (unit.name, unit.cpu_s, unit.solo_wall_s) == ("tests/x.py", 10.0, 30.0)
