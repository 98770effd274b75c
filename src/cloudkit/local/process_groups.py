"""Signalling a child's process group without hitting a stranger whose pid was recycled.

Every local child runs in its own session, so its process group id is its pid. Once the
child has been reaped that number may be handed to a new process (`pid_max` is 32,768 on
many machines, and a test suite that runs playbooks wraps it within minutes), and a
`killpg` sent after that would stop another process's whole group. Linux never reuses a
number that still names a live group, so: while a process with that pid exists, the group
it leads is ours only if we have not reaped our leader yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")


def signal_group(pid: int, sig: signal.Signals, *, leader_reaped: bool) -> None:
    """`killpg(pid, sig)`, unless the leader was reaped and the number names a new process.

    With the leader reaped and no process of that number, what is left in the group (a
    playbook the child started) is ours and gets the signal. Without /proc (not Linux) the
    check cannot be made and the signal is sent as before."""
    if leader_reaped and PROC.is_dir() and (PROC / str(pid)).exists():
        return  # the number was recycled: our group has no members left
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
