"""What `make test`'s hand-out would take with N workers on a machine's cores: a simulation
calibrated on one measured run (`--cpu-json`), to choose WORKERS without a run per choice.

    python -m tests.harness.handout cpu.json [--cores 2] [--stretch 1.1]

Each file is one unit of work (`--dist loadfile`), handed out in the suite's order (longest
files first, then tier by tier: tests/conftest.py) to the first free worker. A file needs its
CPU seconds and waits the rest of its wall time (VM boots, jobs, Leases); from the measured run,
its waits are its wall minus `stretch` times its CPU (the CPU it got was slowed by the other
workers'). While files run together they share the cores: when their demand (each one's CPU over
its unhindered wall) exceeds the cores, every one of them slows in proportion.
Crude, and said so: it is calibrated on the whole run's wall time (`stretch` 1.1 reproduced a
measured 18-minute run within a minute), not on each file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import handout_rank

STEP_S = 0.5


@dataclass(frozen=True)
class WorkUnit:
    name: str
    solo_wall_s: float
    """Its wall time with the cores to itself."""
    cpu_s: float

    @property
    def demand(self) -> float:
        """The cores it keeps busy while it runs unhindered."""
        return self.cpu_s / self.solo_wall_s if self.solo_wall_s > 0 else 0.0


def units_of(report: dict[str, object], stretch: float) -> list[WorkUnit]:
    """A `--cpu-json` report's files, in the order `make test` hands them out."""
    tests = report["tests"]
    assert isinstance(tests, dict)
    walls: dict[str, list[float]] = {}
    for nodeid, figures in tests.items():
        entry = walls.setdefault(nodeid.split("::", 1)[0], [0.0, 0.0])
        entry[0] += sum(figures["wall_s"].values())
        entry[1] += sum(figures["cpu_s"].values())
    return [
        WorkUnit(name, max(wall - stretch * cpu, 0.0) + cpu, cpu)
        for name, (wall, cpu) in sorted(walls.items(), key=lambda item: handout_rank(item[0]))
    ]


def makespan(units: Sequence[WorkUnit], workers: int, cores: float) -> tuple[float, float]:
    """(seconds until the last unit ends, average cores busy) with `workers` workers."""
    waiting = list(units)
    running: dict[str, list[float]] = {}  # name -> [solo seconds left, demand]
    now = busy = 0.0
    while waiting or running:
        while len(running) < workers and waiting:
            unit = waiting.pop(0)
            running[unit.name] = [unit.solo_wall_s, unit.demand]
        demand = sum(left_and_demand[1] for left_and_demand in running.values())
        speed = 1.0 if demand <= cores else cores / demand
        busy += min(demand, cores) * STEP_S
        for name in list(running):
            running[name][0] -= speed * STEP_S
            if running[name][0] <= 0:
                del running[name]
        now += STEP_S
    return now, (busy / now if now else 0.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cpu_json", type=Path, help="a report of --cpu-json")
    parser.add_argument("--cores", type=float, default=2.0)
    parser.add_argument("--stretch", type=float, default=1.1)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    args = parser.parse_args(argv)
    units = units_of(json.loads(args.cpu_json.read_text()), args.stretch)
    figures = {}
    for workers in args.workers:
        seconds, cores_busy = makespan(units, workers, args.cores)
        figures[str(workers)] = {
            "minutes": round(seconds / 60, 1),
            "cores_busy": round(cores_busy, 2),
        }
    print(json.dumps({"cpu_s": round(sum(u.cpu_s for u in units)), "workers": figures}, indent=2))


if __name__ == "__main__":
    main()
