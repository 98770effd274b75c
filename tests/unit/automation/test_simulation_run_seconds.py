"""A simulated job's run time from its instance's annotation (`run_seconds_from_annotation`):
read only when the template says so, only the annotation of the job's own effects, and a
value that is not a finite, non-negative number fails the job naming the annotation."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.local.automation.simulation import (
    SimulationError,
    parse_simulation,
    run_seconds_annotation,
    run_seconds_of,
)


def launch(annotations: Any) -> dict[str, Any]:
    metadata = {"name": "vm-1", "annotations": annotations}
    return {"ansible_eda": {"event": {"payload": {"metadata": metadata}}}}


def spec(**simulate: Any) -> Any:
    simulate = {"effects": "provision", "run_seconds": 2, **simulate}
    return parse_simulation("t", {"simulate": simulate})


def test_the_annotation_of_the_jobs_effects_sets_its_run_time() -> None:
    reading = spec(run_seconds_from_annotation=True)
    assert run_seconds_of(reading, launch({run_seconds_annotation("provision"): "30"})) == 30.0
    assert run_seconds_of(reading, launch({run_seconds_annotation("provision"): "0.5"})) == 0.5


def test_without_the_flag_or_the_annotation_the_template_decides() -> None:
    annotated = launch({run_seconds_annotation("provision"): "30"})
    assert run_seconds_of(spec(), annotated) == 2.0
    reading = spec(run_seconds_from_annotation=True)
    assert run_seconds_of(reading, launch({run_seconds_annotation("deprovision"): "30"})) == 2.0
    assert run_seconds_of(reading, launch(None)) == 2.0
    assert run_seconds_of(reading, {"ansible_eda": "not a mapping"}) == 2.0


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", "", 30, None])
def test_a_value_that_is_no_duration_fails_naming_the_annotation(value: Any) -> None:
    reading = spec(run_seconds_from_annotation=True)
    name = run_seconds_annotation("provision")
    if value is None:  # absent, in effect
        assert run_seconds_of(reading, launch({name: value})) == 2.0
        return
    with pytest.raises(SimulationError) as raised:
        run_seconds_of(reading, launch({name: value}))
    # The tenant's value is not echoed: the message is the annotation's name and the rule.
    assert str(raised.value) == f"annotation {name}: must be a number of seconds, not negative"


def test_the_flag_must_be_a_boolean() -> None:
    with pytest.raises(SimulationError, match="run_seconds_from_annotation"):
        spec(run_seconds_from_annotation="yes")
