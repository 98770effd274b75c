"""The stack processes' collector settings and pause log (cloudkit.local.stack.pauses).

Each check runs in a fresh interpreter: the settings are process-wide, and the children of the
stack get them from the bootstrap of `procs.cloudkit_command`, which one test runs as is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cloudkit.local.stack.pauses import COLLECTOR_ENV, PAUSE_LOG_ENV
from cloudkit.local.stack.procs import cloudkit_command

SURVIVORS = """
import gc, json
from cloudkit.local.stack.pauses import settle
settle()
kept = [{"status": {"conditions": [{"type": str(i)}]}} for i in range(50_000)]
gc.collect()
frozen = gc.get_freeze_count()

class Node:
    pass

def cycle():
    node = Node()
    node.me = node

cycle()
print(json.dumps({"frozen": frozen, "cycle_collected": gc.collect() >= 1}))
"""

BUSY_CALLBACK = """
import asyncio, time
from cloudkit.local.stack.pauses import settle
settle()

async def busy_step():
    began = time.thread_time()
    while time.thread_time() - began < 0.03:  # 30 ms of CPU in one step of the loop
        pass

asyncio.run(busy_step())
"""


def _run(script: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_what_a_full_collection_leaves_is_frozen_and_new_cycles_are_still_collected() -> None:
    settled = json.loads(_run(SURVIVORS, **{COLLECTOR_ENV: ""}))
    # Each kept instance is three tracked containers (a dict of atoms is not tracked).
    assert settled["frozen"] >= 50_000 * 3
    assert settled["cycle_collected"]


def test_the_default_collector_is_kept_on_request() -> None:
    default = json.loads(_run(SURVIVORS, **{COLLECTOR_ENV: "default"}))
    assert default["frozen"] == 0
    assert default["cycle_collected"]


def test_a_long_callback_is_logged_with_its_coroutine_and_its_cpu(tmp_path: Path) -> None:
    _run(BUSY_CALLBACK, **{PAUSE_LOG_ENV: str(tmp_path)})
    (log,) = tmp_path.glob("*.jsonl")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    busy = [e for e in entries if e["kind"] == "callback" and "busy_step" in e["what"]]
    assert len(busy) == 1, entries
    assert busy[0]["cpu_ms"] >= 25
    # Wall and CPU come from two clocks of different resolution: equal within a millisecond.
    assert busy[0]["ms"] >= busy[0]["cpu_ms"] - 1


def test_every_child_of_the_stack_settles_before_its_command(tmp_path: Path) -> None:
    subprocess.run(
        cloudkit_command("version"),
        env={**os.environ, PAUSE_LOG_ENV: str(tmp_path)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.jsonl")] == ["version"]
