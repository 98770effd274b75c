"""How `cloudkit up` restarts an operator replica: kubelet's back-off, and exits told to people."""

from __future__ import annotations

import signal

from cloudkit.local.stack.replicas import (
    BACKOFF_CAP_S,
    RESET_AFTER_S,
    exit_reason,
    exits_in_a_row,
    restart_delay,
)


def test_the_back_off_doubles_from_one_second_to_its_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_CAP_S, BACKOFF_CAP_S, BACKOFF_CAP_S]


def test_a_long_run_ends_the_crash_loop() -> None:
    assert exits_in_a_row(0, 0.5) == 1
    assert exits_in_a_row(4, RESET_AFTER_S - 0.1) == 5
    assert exits_in_a_row(4, RESET_AFTER_S) == 1
    assert restart_delay(exits_in_a_row(6, RESET_AFTER_S + 1)) == 1.0


def test_exits_are_told_by_signal_name_or_by_code_with_the_last_line() -> None:
    assert exit_reason(-signal.SIGKILL, "some log line") == "killed by SIGKILL"
    assert exit_reason(-signal.SIGTERM, None) == "killed by SIGTERM"
    lost = "cloudkit operator: lost the leader Lease; exiting so a fresh process stands again"
    assert exit_reason(1, lost) == f"exited with code 1: {lost}"
    assert exit_reason(2, None) == "exited with code 2"
