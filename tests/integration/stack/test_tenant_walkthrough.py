"""The tenant's walkthrough, as a person runs it: `cloudkit up`, `cloudkit login --tenant acme`,
create, list, watch and delete compute instances with the `cloudkit` command, and another
tenant (another CLOUDKIT_CONFIG) that cannot see any of it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudkit.fulfillment.models import EventType

# `cloudkit up` and a dozen `cloudkit` commands, each a new Python process: minutes on a busy
# machine.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240.0
STEP_TIMEOUT_S = 60.0
# A deleted order goes once its instance is deprovisioned (the stack's controller and operator).
DELETION_TIMEOUT_S = 180.0


class Stack:
    """`cloudkit up` in its own session; the state directory tells when it is ready."""

    def __init__(self, state_dir: Path, log: Path) -> None:
        self.state_dir, self.log = state_dir, log
        self.env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        self.process = subprocess.Popen(
            # Simulated jobs: the playbooks are not the subject of a tenant's walkthrough.
            [
                *(str(BIN / "cloudkit"), "up", "--state-dir", str(state_dir)),
                *("--vm-boot-seconds", "1", "--simulated-jobs", "1"),
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.state_dir / "kubeconfig").exists():
            assert self.process.poll() is None, f"cloudkit up exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{self.log.read_text()}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Shell:
    """One person's shell: the `cloudkit` command with its own CLOUDKIT_CONFIG."""

    def __init__(self, stack: Stack, config: Path) -> None:
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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path / "state", tmp_path / "up.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _of(event: dict[str, Any], kind: str, id: str) -> bool:
    return event.get("type") == kind and event["compute_instance"].get("id") == id


def test_a_tenant_orders_watches_and_deletes_and_another_sees_nothing(
    stack: Stack, tmp_path: Path
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
