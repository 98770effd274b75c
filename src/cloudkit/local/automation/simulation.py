"""Pure: what a simulated job template is (templates file `kind: simulated`) and how it is read.

A simulated template is a load generator in the spirit of KWOK: its jobs walk AWX's states on
configured durations and produce the shipped playbooks' Kubernetes effects without starting
Ansible (`simulated_jobs` runs them). It is never the default: only a templates-file entry that
says `kind: simulated` makes one, and everything it shows says it is a simulation (the
template's description and playbook field, the job's stdout).

    - name: cloudkit-provision
      kind: simulated
      simulate:
        effects: provision        # provision | deprovision | none
        pending_seconds: 0        # time in `pending`, then in `waiting`
        waiting_seconds: 0
        run_seconds: 2            # the least time in `running`
        outcome: successful       # successful | failed
        poll_seconds: 1           # how often a wait re-reads, as the playbooks' wait_sleep
        run_seconds_from_annotation: false

With `run_seconds_from_annotation`, an instance may set its own job's time in `running` with
the annotation simulation.cloudkit.openshift.io/<effects>-seconds (KWOK's `durationFrom`): a
test holds one instance's provisioning open while the others' jobs stay short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SIMULATED = "simulated"
"""The templates-file kind; such a template is served as a job template."""

EFFECTS = ("provision", "deprovision", "none")
OUTCOMES = ("successful", "failed")
DESCRIPTION_MARK = "[simulated: no Ansible runs]"
STDOUT_MARK = "simulated job: no Ansible ran"
SIMULATE_KEYS = frozenset(
    {
        "effects",
        "pending_seconds",
        "waiting_seconds",
        "run_seconds",
        "outcome",
        "poll_seconds",
        "run_seconds_from_annotation",
    }
)
RUN_SECONDS_ANNOTATION = "simulation.cloudkit.openshift.io/{effects}-seconds"
"""The annotation an instance sets its job's run time with (`run_seconds_from_annotation`)."""


class SimulationError(ValueError):
    """A `simulate` entry is malformed; the message names the template."""


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    effects: str = "none"
    pending_seconds: float = 0.0
    waiting_seconds: float = 0.0
    run_seconds: float = 0.0
    outcome: str = "successful"
    poll_seconds: float = 1.0
    run_seconds_from_annotation: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SimulationSpec:
        return cls(**{key: value for key, value in data.items() if key in SIMULATE_KEYS})

    @property
    def playbook_label(self) -> str:
        """What the template's `playbook` field shows: a simulation, never a file name."""
        return f"(simulated) {self.effects}"


def parse_simulation(name: str, entry: Mapping[str, Any]) -> SimulationSpec:
    """The `simulate` mapping of a `kind: simulated` entry (absent: every default)."""
    where = f"template {name!r}: simulate"
    raw = entry.get("simulate") or {}
    if not isinstance(raw, Mapping):
        raise SimulationError(f"{where} must be a mapping")
    unknown = sorted(str(key) for key in raw if key not in SIMULATE_KEYS)
    if unknown:
        raise SimulationError(f"{where}: unknown keys {unknown}")
    effects = raw.get("effects", "none")
    if effects not in EFFECTS:
        raise SimulationError(f"{where}: effects must be one of {EFFECTS}")
    outcome = raw.get("outcome", "successful")
    if outcome not in OUTCOMES:
        raise SimulationError(f"{where}: outcome must be one of {OUTCOMES}")
    durations = {
        key: _seconds(where, key, raw.get(key, default))
        for key, default in (
            ("pending_seconds", 0.0),
            ("waiting_seconds", 0.0),
            ("run_seconds", 0.0),
            ("poll_seconds", 1.0),
        )
    }
    if durations["poll_seconds"] <= 0:
        raise SimulationError(f"{where}: poll_seconds must be greater than 0")
    from_annotation = raw.get("run_seconds_from_annotation", False)
    if not isinstance(from_annotation, bool):
        raise SimulationError(f"{where}: run_seconds_from_annotation must be true or false")
    return SimulationSpec(
        effects=str(effects),
        outcome=str(outcome),
        run_seconds_from_annotation=from_annotation,
        **durations,
    )


def run_seconds_annotation(effects: str) -> str:
    return RUN_SECONDS_ANNOTATION.format(effects=effects)


def run_seconds_of(spec: SimulationSpec, extra_vars: Mapping[str, Any]) -> float:
    """This job's least time in `running`: the spec's, or the instance's annotation for these
    effects when the spec reads it and the instance has it. The payload is untrusted: a value
    that is not a finite, non-negative number is an error naming the annotation (not the value)."""
    if not spec.run_seconds_from_annotation:
        return spec.run_seconds
    event = _mapping(_mapping(extra_vars.get("ansible_eda")).get("event"))
    payload = _mapping(event.get("payload"))
    annotations = _mapping(_mapping(payload.get("metadata")).get("annotations"))
    name = run_seconds_annotation(spec.effects)
    value = annotations.get(name)
    if value is None:
        return spec.run_seconds
    try:
        seconds = float(value) if isinstance(value, str) else math.nan
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise SimulationError(f"annotation {name}: must be a number of seconds, not negative")
    return seconds


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def described(description: str) -> str:
    """A simulated template's description always says what it is."""
    return f"{DESCRIPTION_MARK} {description}".strip()


def _seconds(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SimulationError(f"{where}: {key} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise SimulationError(f"{where}: {key} must be finite and not negative")
    return float(value)
