"""Holds that make a moment of a lifecycle last until a test has acted in it.

Two real ways a moment stretches, so a deletion lands in it by construction, not by timing:
- a child of the stack stopped with SIGSTOP and continued with SIGCONT: an unresponsive
  process, as a frozen VM, a stalled host or a debugger makes it. Its sockets stay open, so a
  client's request waits in the kernel until the process runs again;
- a provision job held at a gate: the automation service's provision template points at a
  thin wrapper (playbooks/gated-provision.yml) that waits for a file named by the instance's
  uid before it imports the real provision playbook. Installing it is what an administrator
  does to an AAP job template: change its playbook and variables, restart the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import yaml

from cloudkit.local.stack.backends import playbooks_dir
from tests.harness.stack_lab import PROVISION_TEMPLATE, Lab
from tests.waiting import until

GATED_PLAYBOOK = (
    Path(__file__).resolve().parents[1]
    / "integration"
    / "resilience"
    / "playbooks"
    / "gated-provision.yml"
)
STOP_TIMEOUT_S = 10.0


def process_state(pid: int) -> str:
    """The one-letter state of /proc/<pid>/stat (R, S, T for stopped, ...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]  # the command name may hold spaces


async def wait_stopped(pid: int, within: float = STOP_TIMEOUT_S) -> None:
    """Until the kernel shows the process stopped: a SIGSTOP is delivered asynchronously."""

    async def state() -> str:
        return process_state(pid)

    await until(
        state,
        lambda s: s in {"T", "t"},
        within=within,
        what=f"process {pid} stopped",
        interval=0.01,
    )


class Holds:
    """One hold at a time (each stops a process every instance depends on), and the gates."""

    def __init__(self, lab: Lab, gate_dir: Path) -> None:
        self.lab = lab
        self.gate_dir = gate_dir
        self._one_at_a_time = asyncio.Lock()
        self.gated = False
        """Whether the provision template runs the gated wrapper (`install_gated_provision`)."""

    @contextlib.asynccontextmanager
    async def paused(self, child: str) -> AsyncIterator[None]:
        """The child stopped for the body (and continued after it, whatever happens)."""
        async with self._one_at_a_time:
            pid = self.lab.child(child).pid
            os.kill(pid, signal.SIGSTOP)
            try:
                await wait_stopped(pid)
                yield
            finally:
                os.kill(pid, signal.SIGCONT)

    def open_gate(self, uid: str) -> None:
        """Let the provision jobs of the instance with this uid go on (every one waits); nothing
        to open without the gated wrapper."""
        if self.gated:
            (self.gate_dir / uid).touch()

    async def install_gated_provision(self) -> None:
        """Point the provision template at the gated wrapper and restart the service on it."""
        self.gate_dir.mkdir(parents=True, exist_ok=True)
        argv = self.lab.specs["automation"].argv
        await self.lab.stop_child("automation")
        gate_provision_template(Path(argv[argv.index("--templates") + 1]), self.gate_dir)
        await self.lab.restart_automation()
        self.gated = True


def gate_provision_template(templates: Path, gate_dir: Path) -> None:
    """Rewrite the templates file: the provision template runs the gated wrapper, which is told
    where the gates are and which playbook is the real one."""
    entries = yaml.safe_load(templates.read_text())
    provision = next(e for e in entries if e["name"] == PROVISION_TEMPLATE)
    provision["playbook"] = str(GATED_PLAYBOOK)
    provision["extra_vars"] = {
        **(provision.get("extra_vars") or {}),
        "resilience_gate_dir": str(gate_dir),
        "resilience_provision_playbook": str(playbooks_dir() / "provision.yml"),
    }
    # An existing file keeps its mode (0600: it may carry the notification receiver's token).
    templates.write_text(yaml.safe_dump(entries, sort_keys=False))
