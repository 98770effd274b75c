"""A group is signalled only while it can still be ours: a reaped leader's recycled pid names a
stranger, whose group must survive; what is left of our own group must not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cloudkit.local.process_groups import signal_group
from tests.waiting import until_sync

START_A_MEMBER = (
    "import subprocess; print(subprocess.Popen(['sleep', '60'], stdout=subprocess.DEVNULL).pid)"
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="the check needs /proc")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_stranger_with_the_reaped_leader_s_number_is_left_alone() -> None:
    # The stranger stands for a process that was given our reaped leader's pid: a session
    # leader whose group id is that number.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        signal_group(stranger.pid, signal.SIGKILL, leader_reaped=True)
        # A SIGKILL ends its target at its next scheduling: 2 s is ample for a wrong one.
        with pytest.raises(subprocess.TimeoutExpired):
            stranger.wait(timeout=2)
    finally:
        stranger.kill()
        stranger.wait()


def test_what_is_left_of_our_group_after_its_leader_is_reaped_is_stopped() -> None:
    # The leader starts a member of its group and exits; we reap the leader.
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            START_A_MEMBER,
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = leader.communicate(timeout=30)
    member = int(out)
    try:
        assert _alive(member)
        signal_group(leader.pid, signal.SIGKILL, leader_reaped=True)
        until_sync(lambda: _alive(member), lambda alive: not alive, within=10, what="member gone")
    finally:
        if _alive(member):
            os.kill(member, signal.SIGKILL)
