"""Ansible callback `job_profile`: where a playbook's seconds go, task by task, as JSON lines.

For each task: its name, module (action), wall seconds, CPU seconds of the whole process tree
of ansible-playbook while it ran (the controller, its forked worker, the module process), and
`module_runs`: how many module processes it started (a module's result carries `invocation`,
which AnsibleModule adds and an action plugin that runs no module does not); the last line
holds the run's totals. ansible.posix's profile_tasks gives wall time only, and a
module's CPU is spent in a grandchild process that no callback sees, hence /proc: the tree's CPU
at each task boundary is this process's own and reaped children's time plus every live
descendant's (Linux only; standard library only, so any ansible-core can load it).

Enabled by benchmarks/jobs.py with ANSIBLE_CALLBACK_PLUGINS=<this directory>,
ANSIBLE_CALLBACKS_ENABLED=job_profile and JOB_PROFILE_OUT=<file to append to>.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, utime + stime + cutime + cstime in seconds) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after its last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / _TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by `root` and all its descendants, live or reaped."""
    stats = {pid: _stat(pid) for pid in os.listdir("/proc") if pid.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(int(pid))
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        stat = stats.get(str(pid))
        if stat is not None:
            total += stat[1]
        stack.extend(children.get(pid, ()))
    return total


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no type hints
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "job_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out = os.environ.get("JOB_PROFILE_OUT", "")
        self._pid = os.getpid()
        self._started = time.monotonic()
        self._current: dict[str, Any] | None = None
        self._lines: list[dict[str, Any]] = []

    def _close_task(self) -> None:
        if self._current is None:
            return
        task = self._current
        task["wall_s"] = round(time.monotonic() - task.pop("_wall"), 3)
        task["cpu_s"] = round(tree_cpu_s(self._pid) - task.pop("_cpu"), 3)
        self._lines.append(task)
        self._current = None

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._close_task()
        self._current = {
            "task": task.get_name(),
            "module": task.action,
            "status": "ok",
            "module_runs": 0,
            "_wall": time.monotonic(),
            "_cpu": tree_cpu_s(self._pid),
        }

    def _mark(self, status: str) -> None:
        if self._current is not None and self._current["status"] == "ok":
            self._current["status"] = status

    def _count_module(self, result: Any) -> None:
        if self._current is not None and "invocation" in (getattr(result, "_result", None) or {}):
            self._current["module_runs"] += 1

    def v2_runner_on_ok(self, result: Any) -> None:
        self._count_module(result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._mark("skipped")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._count_module(result)
        self._mark("failed")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close_task()
        totals = {
            "task": "(total)",
            "wall_s": round(time.monotonic() - self._started, 3),
            "cpu_s": round(tree_cpu_s(self._pid), 3),
            "module_runs": sum(line["module_runs"] for line in self._lines),
        }
        if self._out:
            with open(self._out, "a") as file:
                for line in [*self._lines, totals]:
                    file.write(json.dumps(line) + "\n")
