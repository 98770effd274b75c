"""Summarise the stall logs of benchmarks/loop_stalls/sitecustomize.py: per process (its
first argument: apiserver, operator, ...) and per cause, how many stalls, their wall and CPU
milliseconds, how many the process held itself (CPU at least half the wall time) and how many
spent the threshold or more in CPU of their own (`own_cpu_over`: on a busy machine every stall
is mostly a wait for a core, so this is what the process itself can remove). JSON on stdout.

    .venv/bin/python benchmarks/loop_stalls/summary.py DIR [--since EPOCH_S]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any


def summarise(directory: Path, since: float, threshold_ms: float = 10.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(directory.glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines or "argv" not in lines[0]:
            continue
        process = " ".join(lines[0]["argv"][:1]) or "python"
        causes: dict[str, dict[str, Any]] = collections.defaultdict(
            lambda: {
                "count": 0,
                "held": 0,
                "own_cpu_over": 0,
                "wall_ms": 0.0,
                "cpu_ms": 0.0,
                "max_wall_ms": 0.0,
                "max_cpu_ms": 0.0,
            }
        )
        for line in lines[1:]:
            if line["at"] < since:
                continue
            cause = causes[line["what"]]
            cause["count"] += 1
            cause["held"] += line["cpu_ms"] >= line["wall_ms"] / 2
            cause["own_cpu_over"] += line["cpu_ms"] >= threshold_ms
            cause["wall_ms"] = round(cause["wall_ms"] + line["wall_ms"], 1)
            cause["cpu_ms"] = round(cause["cpu_ms"] + line["cpu_ms"], 1)
            cause["max_wall_ms"] = max(cause["max_wall_ms"], line["wall_ms"])
            cause["max_cpu_ms"] = max(cause["max_cpu_ms"], line["cpu_ms"])
        ranked = dict(sorted(causes.items(), key=lambda kv: -kv[1]["wall_ms"]))
        out[f"{process} {path.stem}"] = ranked
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--since", type=float, default=0.0, help="epoch seconds")
    parser.add_argument("--own-cpu-ms", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(summarise(args.directory, args.since, args.own_cpu_ms), indent=1))


if __name__ == "__main__":
    main()
