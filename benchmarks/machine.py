"""CPU of the local stack's processes from /proc, and the machine's limit for a workload.

The stack's parts are the operator, the API server and the automation service (child
processes) and the VM simulator, which runs in the event loop of the process that started the
stack: its CPU is that loop's thread's (/proc/self/task/<tid>/stat), so the benchmark's own load
and watcher, in another thread, are not counted as the simulator's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STACK_PROCESSES = ("operator", "apiserver", "automation")
SIMULATOR = "simulator"
MACHINE = "machine"
"""Not a part: every core's busy time, to tell what else the machine was doing."""


def cpu_s(stat_path: Path) -> float:
    """User + system CPU seconds of a process or thread so far (its /proc stat file)."""
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds every core spent on anything but idling since boot (/proc/stat)."""
    # user nice system idle iowait irq softirq steal: all but idle and iowait are work.
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cores() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class StackCpu:
    """Where each part's CPU is read: the children's pids and the simulator's thread."""

    pids: dict[str, int]
    simulator_tid: int

    def sample(self) -> dict[str, float]:
        """CPU seconds so far, per part, and the whole machine's busy seconds (MACHINE)."""
        seconds = {part: cpu_s(Path(f"/proc/{pid}/stat")) for part, pid in self.pids.items()}
        seconds[SIMULATOR] = cpu_s(Path(f"/proc/self/task/{self.simulator_tid}/stat"))
        seconds[MACHINE] = machine_busy_s()
        return seconds


@dataclass(frozen=True)
class Window:
    """CPU and wall time of a stretch of a run (time.monotonic() at both ends)."""

    began: float
    ended: float
    cpu_before: dict[str, float]
    cpu_after: dict[str, float]

    @property
    def wall_s(self) -> float:
        return self.ended - self.began

    def cpu_by_part(self) -> dict[str, float]:
        parts = (part for part in self.cpu_before if part != MACHINE)
        return {part: self.cpu_after[part] - self.cpu_before[part] for part in parts}

    def stack_cpu_s(self) -> float:
        return sum(self.cpu_by_part().values())

    def other_cpu_s(self) -> float:
        """CPU the rest of the machine used meanwhile (the benchmark's load included)."""
        busy = self.cpu_after[MACHINE] - self.cpu_before[MACHINE]
        return max(0.0, busy - self.stack_cpu_s())


def capacity(window: Window, lifecycles: int, machine_cores: int) -> dict[str, float]:
    """The drain rate over the window against the machine's limit for this workload.

    limit = cores ÷ (stack CPU seconds per lifecycle): the rate at which the stack would drain
    if every core did nothing but this work. The ratio is therefore the stack's share of the
    cores over the window: what idles them (waits in the jobs, a tail, other work on the
    machine) is what it is short of 1. On a shared machine the cores others used are not
    available: `capacity_ratio_of_free_cores` divides by what they left."""
    cpu_per_lifecycle = window.stack_cpu_s() / lifecycles
    drain = lifecycles / window.wall_s
    limit = machine_cores / cpu_per_lifecycle
    core_seconds = machine_cores * window.wall_s
    free = max(core_seconds - window.other_cpu_s(), window.stack_cpu_s())
    return {
        "drain_lifecycles_per_s": round(drain, 2),
        "machine_limit_lifecycles_per_s": round(limit, 2),
        "stack_cpu_ms_per_lifecycle": round(cpu_per_lifecycle * 1000, 1),
        "stack_cpu_ms_per_lifecycle_by_part": {
            part: round(seconds * 1000 / lifecycles, 1)
            for part, seconds in window.cpu_by_part().items()
        },
        "capacity_ratio": round(drain / limit, 3),
        "other_cpu_share": round(window.other_cpu_s() / core_seconds, 3),
        "capacity_ratio_of_free_cores": round(window.stack_cpu_s() / free, 3),
    }
