"""One `cloudkit up` (AAP direct), used as people use it, from its start to a crash: the
end-to-end scenarios (`cloudkit scenario … --kubeconfig`, and `cloudkit login` for the tenant's
way), the tenant's walkthrough with the `cloudkit` command, and last a dying child that stops
the stack with a clear message.

Each test has its own instances and tenants, so they share the stack as people would. Its jobs
are simulated (`--simulated-jobs`: the playbooks' effects through the same API, held to the
playbooks by tests/contract/playbooks), because what these tests prove is the operator's and
the stack's: job ordering, cancel before deprovision, restart, the order's trail, tenancy,
supervision. Real AAP playbooks run end to end in `test_scenario_with_faults.py` (a deletion
mid-provision) and `test_bench_latency.py`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudkit.fulfillment.models import EventType
from tests.harness import scenario_runs
from tests.harness.up import BIN, Up, alive, cmdline, descendants

# The stack's start-up lands in the first test's time; a dozen `cloudkit` commands, each a new
# Python process, take minutes on a busy machine.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

JOB_SECONDS = "5"
"""Long enough that a deletion seen Running lands while the job runs (the cancel path)."""
STEP_TIMEOUT_S = 60.0
# A deleted order goes once its instance is deprovisioned (the stack's controller and operator).
DELETION_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    yield from scenario_runs.shared_stack(
        tmp_path_factory, "aap", ("--simulated-jobs", JOB_SECONDS)
    )


def test_lifecycle(stack: Up, tmp_path: Path) -> None:
    scenario_runs.lifecycle(stack, tmp_path)


def test_delete_during_provision(stack: Up, tmp_path: Path) -> None:
    scenario_runs.delete_during_provision(stack, tmp_path)


def test_delete_during_provision_via_fulfillment(stack: Up, tmp_path: Path) -> None:
    scenario_runs.delete_during_provision_via_fulfillment(stack, tmp_path)


def test_restart(stack: Up, tmp_path: Path) -> None:
    scenario_runs.restart(stack, tmp_path)


# --- the tenant's walkthrough: `cloudkit login --tenant acme`, create, list, watch and delete
# compute instances with the `cloudkit` command, and another tenant (another CLOUDKIT_CONFIG)
# that cannot see any of it.


class Shell:
    """One person's shell: the `cloudkit` command with its own CLOUDKIT_CONFIG."""

    def __init__(self, stack: Up, config: Path) -> None:
        self.stack = stack
        self.env = {**stack.env, "CLOUDKIT_CONFIG": str(config)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "cloudkit"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"cloudkit {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self, *args: str) -> Follower:
        return Follower(
            subprocess.Popen(
                [str(BIN / "cloudkit"), *args],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )


class Follower:
    """A long-running command whose output lines are read on a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, wanted: Any, what: str, within: float = STEP_TIMEOUT_S) -> dict[str, Any]:
        """The first JSON line (event) for which `wanted(event)` holds."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"{what}: not seen; lines so far: {self.seen}"
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                assert self.process.poll() is None, f"watch exited: {self.seen}"
                continue
            self.seen.append(line)
            event = json.loads(line)
            if wanted(event):
                return dict(event)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def _of(event: dict[str, Any], kind: str, id: str) -> bool:
    return event.get("type") == kind and event["compute_instance"].get("id") == id


def test_a_tenant_orders_watches_and_deletes_and_another_sees_nothing(
    stack: Up, tmp_path: Path
) -> None:
    acme, globex = Shell(stack, tmp_path / "acme.json"), Shell(stack, tmp_path / "globex.json")
    state = str(stack.state_dir)
    assert "as tenant acme" in acme.ok("login", "--tenant", "acme", "--state-dir", state)
    globex.ok("login", "--tenant", "globex", "--state-dir", state)
    assert (tmp_path / "acme.json").stat().st_mode & 0o777 == 0o600

    watch = acme.start("get", "computeinstances", "-w", "-o", "json")
    try:
        # The watch lists first (LISTED lines) then follows; an empty list prints nothing, so
        # the first order is created until the watch has reported it.
        created = json.loads(
            acme.ok(
                "create",
                "computeinstance",
                "--name",
                "web",
                "--template",
                "small",
                "-p",
                "cores=2",
                "--boot-disk-size",
                "20",
                "-o",
                "json",
            )
        )
        id = created["id"]
        assert created["metadata"]["tenant"] == "acme"
        assert created["spec"]["template_parameters"] == {"cores": "2"}
        watch.wait_for(lambda e: e["compute_instance"].get("id") == id, "the order on the watch")

        listed = acme.ok("get", "computeinstances")
        assert id in listed and "web" in listed

        # Another tenant: an empty list, and the id answers exactly like a missing one.
        theirs = globex.run("get", "computeinstances", "-o", "json")
        assert theirs.returncode == 0 and json.loads(theirs.stdout)["items"] == []
        for shell, args in (
            (globex, ("describe", "computeinstance", id)),
            (globex, ("delete", "computeinstance", id)),
            (acme, ("describe", "computeinstance", "no-such-id")),
        ):
            done = shell.run(*args)
            assert done.returncode == 1 and "not found" in done.stderr, done

        assert f'computeinstance "{id}" deleted' in acme.ok("delete", "computeinstance", id)
        watch.wait_for(
            lambda e: _of(e, EventType.DELETED, id), "DELETED on the watch", DELETION_TIMEOUT_S
        )
    finally:
        watch.stop()


# --- last: the stack's end ---------------------------------------------------------------------


def test_a_dying_child_stops_the_stack_with_a_clear_message(stack: Up) -> None:
    children = descendants(stack.process.pid)
    automation = next(
        pid for pid in children if b"automation" in cmdline(pid) and b"--templates" in cmdline(pid)
    )
    os.kill(automation, signal.SIGKILL)
    assert stack.process.wait(timeout=60) == 1, stack.output()[-3000:]
    assert "automation exited with code -9" in stack.output()
    left = [pid for pid in children if alive(pid)]
    assert left == [], f"still running after a child died: {left}"
