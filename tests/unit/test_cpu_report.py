"""The CPU report counts what a test costs: its own CPU and that of the children it reaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BURN_S = 0.5

BURNING_TESTS = f"""
import subprocess
import sys
import time

BURN = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < {BURN_S}: pass"


def test_in_a_child():
    subprocess.run([sys.executable, "-c", BURN], check=True)


def test_in_the_process():
    start = time.process_time()
    while time.process_time() - start < {BURN_S}:
        pass


def test_idle():
    pass
"""


def test_a_test_s_own_cpu_and_its_reaped_children_s_are_counted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_burn=BURNING_TESTS)
    out = pytester.path / "cpu.json"
    result = pytester.runpytest_subprocess(
        "-p", "tests.harness.cpu_report", "--cpu-json", str(out), "--cpu-top", "3"
    )
    result.assert_outcomes(passed=3)
    tests = json.loads(out.read_text())["tests"]
    spent = {name.split("::")[1]: sum(t["cpu_s"].values()) for name, t in tests.items()}
    assert spent["test_in_a_child"] >= BURN_S * 0.9, spent
    assert spent["test_in_the_process"] >= BURN_S * 0.9, spent
    assert spent["test_idle"] < BURN_S / 2, spent
    result.stdout.fnmatch_lines(["*CPU: * s in tests*", "*test_burn.py::test_in_a_child*"])
