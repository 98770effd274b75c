"""`cloudkit up` as a user runs it: the command in its own session, its output in a log, the
kubeconfig it publishes, kubectl against it, Ctrl-C, and the processes it started (from /proc).

The stack is the product's own (`cloudkit up` calls `start_stack`); this only starts the command,
waits for the kubeconfig whose presence means "ready", and stops it. `stop()` is Ctrl-C, so the
command stops its children itself and their CPU is reaped (and counted) with it; `kill()` is
the last resort of a `finally`.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.waiting import until_sync

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 300.0
"""Only bounds a failure: on a shared, loaded machine an EDA stack took over 90 s to start."""
STOP_TIMEOUT_S = 60.0


def descendants(pid: int) -> set[int]:
    """All live descendants of `pid`, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(fields.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def exposed_state(state_dir: Path) -> list[str]:
    """Everything under the state directory that anyone but its owner could read or enter,
    as "mode path"; the test's own kubectl cache (not the stack's) is left out."""
    found = []
    for root, dirs, files in os.walk(state_dir):
        dirs[:] = [d for d in dirs if Path(root, d) != state_dir / "kube-cache"]
        for path in [Path(root)] + [Path(root, f) for f in files]:
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue  # a finished job's directory went away under the walk
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077 or (stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700):
                found.append(f"{stat.S_IMODE(mode):04o} {path.relative_to(state_dir)}")
    return found


class Up:
    """`cloudkit up --provider PROVIDER --vm-boot-seconds 1 OPTIONS…` running in its own
    session, with the most permissive umask (the stack's state must be private by its own
    doing)."""

    def __init__(
        self,
        state_dir: Path,
        log: Path,
        provider: str = "aap",
        *,
        options: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`cloudkit up` with `options` added, and `environ` added to this environment."""
        self.state_dir = state_dir
        self.log = log
        self.provider = provider
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "COLUMNS": "120"}
        env.update(environ or {})
        self.env = env
        command = ["up", "--state-dir", str(state_dir), "--vm-boot-seconds", "1", *options]
        self.process = subprocess.Popen(
            [str(BIN / "cloudkit"), *command, "--provider", provider],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            umask=0,
        )

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"cloudkit up exited early:\n{self.output()}"
            return self.kubeconfig.exists() and "export KUBECONFIG=" in self.output()

        until_sync(ready, bool, within=START_TIMEOUT_S, what="the kubeconfig", interval=0.1)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "kubectl"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.state_dir / "kube-cache"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def interrupt(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Ctrl-C, and the command's exit code once it has stopped everything."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Ctrl-C if it still runs (its children stop and are reaped by it); SIGKILL to its
        whole session if that does not end it."""
        if self.process.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
