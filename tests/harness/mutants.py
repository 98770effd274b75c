"""Mutant runs: a copy of the source tree with one edit, and pytest run against that copy.

The mutant tables (tests/unit/lifecycle/test_mutants.py, tests/unit/operator/test_mutants.py)
break the code in known ways and check the answerable test fails. A fresh interpreter per
mutant spent about 5 s of CPU starting pytest and importing its plugins, kopf and the
Kubernetes clients, and well under 1 s running the tests. So one server process (`python -m
tests.harness.mutants`) imports pytest, its plugins and the third-party libraries once, never
`cloudkit`, and forks a child per run: the child puts the copy first on `sys.path`, imports the
package from it (checked after the run, not assumed) and runs pytest. A fork of a process with
no thread, no event loop and no `cloudkit` module is a fresh interpreter as far as the tests
can tell; each child ends with `os._exit`, so nothing of it returns to the server.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cloudkit"
RUN_TIMEOUT_S = 240.0
"""A deadline for a hung run, not a speed claim: a run takes about a second of CPU."""

# What `cloudkit.operator`, `cloudkit.lifecycle` and their tests import from outside the
# standard library, imported once in the server (never `cloudkit` itself: its copy is the point).
PRELOAD = (
    "pytest",
    "hypothesis",
    "aiohttp",
    "pydantic",
    "yaml",
    "kopf",
    "kubernetes_asyncio.client",
    "kubernetes_asyncio.config",
    "kubernetes_asyncio.watch",
    "prometheus_client",
)


@dataclass(frozen=True)
class Mutant:
    """One small edit of the source that breaks a guarantee, and the test answerable for it."""

    name: str
    module: str
    """The file under src/cloudkit, e.g. `operator/cache.py`."""
    old: str
    new: str
    caught_by: str
    """The test that must be among the failures."""


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str

    def failed(self) -> list[str]:
        """pytest's `-rf` lines of the tests that failed."""
        return [line for line in self.output.splitlines() if line.startswith("FAILED")]


def mutated_tree(tmp: Path, mutant: Mutant | None) -> Path:
    """A copy of the source tree under `tmp`, with `mutant` applied (None: unedited)."""
    tree = tmp / "src"
    shutil.copytree(SRC, tree / "cloudkit", ignore=shutil.ignore_patterns("__pycache__"))
    if mutant is not None:
        target = tree / "cloudkit" / mutant.module
        text = target.read_text()
        assert text.count(mutant.old) == 1, f"mutant {mutant.name!r} no longer applies"
        target.write_text(text.replace(mutant.old, mutant.new))
    return tree


class MutantRunner:
    """The client of one server process; `run` is sequential (one fork at a time)."""

    def __init__(self) -> None:
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.mutants"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, tree: Path, node_ids: list[str]) -> Run:
        """pytest over `node_ids` with `tree` as the cloudkit package."""
        assert self._server.stdin is not None and self._server.stdout is not None
        request = {"tree": str(tree), "args": ["-q", "-p", "no:cacheprovider", "-rf", *node_ids]}
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        answer = self._server.stdout.readline()
        assert answer, f"the mutant server exited with {self._server.wait()}"
        reply: dict[str, Any] = json.loads(answer)
        return Run(int(reply["returncode"]), str(reply["output"]))

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()


# --- the server ----------------------------------------------------------------------------------

COPY_NOT_IMPORTED = 97
"""A child's exit code when `cloudkit` did not come from the copy it was given."""


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    for plugin in entry_points(group="pytest11"):
        plugin.load()
    leaked = sorted(name for name in sys.modules if name.split(".")[0] == "cloudkit")
    assert not leaked, f"the mutant server imported {leaked}: children would not see the copy"


def _child(tree: str, args: list[str], output: IO[str]) -> None:
    """In the forked child: run pytest on the copy; never returns."""
    code = 1
    try:
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        sys.path.insert(0, tree)
        sys.argv = ["pytest", *args]
        import pytest

        code = int(pytest.main(args))
        imported = sys.modules.get("cloudkit")
        origin = str(getattr(imported, "__file__", "") or "")
        if imported is not None and not origin.startswith(tree):
            print(f"cloudkit was imported from {origin}, not from the copy {tree}")
            code = COPY_NOT_IMPORTED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _await_child(pid: int) -> None:
    """Until the child exits, or kill it after RUN_TIMEOUT_S (its status then says so)."""
    handle = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([handle], [], [], RUN_TIMEOUT_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(handle)


def _serve_one(request: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryFile("w+") as output:
        pid = os.fork()
        if pid == 0:
            _child(str(request["tree"]), list(request["args"]), output)
        _await_child(pid)
        _, status = os.waitpid(pid, 0)
        output.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status), "output": output.read()}


def serve() -> None:
    """Answer one JSON request per line on stdin (tree, pytest args) until stdin closes."""
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True  # the copies are throwaway; never cache them
    _preload()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_serve_one(json.loads(line))), flush=True)


if __name__ == "__main__":
    serve()
