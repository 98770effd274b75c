"""A scenario under network faults, run exactly as a user runs it: `cloudkit scenario …
--faults SEED`, which starts its own local stack (API server, automation service, VM simulator,
fulfillment service, operator as real processes, each link through a fault relay) and stops it
afterwards. The one e2e run of real AAP playbooks through a scenario: the provision job that
the deletion cancels is a running `ansible-playbook`. Ordered and deleted through the
fulfillment API, so all five links between the parts carry faults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.scenario_runs import (
    DELETE_DURING_PROVISION_TRAIL,
    THROUGH_THE_API,
    run_scenario,
    validation_names,
)

pytestmark = pytest.mark.stack

FAULTS_SEED = 180
"""A seed whose plan black-holes and resets the operator's connections to the API server and
loses the answers of, then black-holes, its calls to the automation service; the controller's
connections to the API and the API server are refused, black-holed, reset and lose answers
(DIR/faults.json lists the plans)."""
FAULT_SPAN_S = 30
"""The plans repeat this often, so each link meets its first two faults within 17 s of the
stack being ready (this seed: between ~0.4 s and ~17 s), well inside a delete-during-provision
of real playbook jobs whatever the machine's speed."""
LINKS = {
    "operator→apiserver",
    "operator→automation",
    "operator→fulfillment",
    "controller→fulfillment",
    "controller→apiserver",
}


def test_delete_during_provision_through_the_api_passes_on_its_first_attempt_with_faults(
    tmp_path: Path,
) -> None:
    """One run, no retry of the test, ordered and deleted through the API: every validation
    passes (the tenant's view and the AAP trail included) while all five links between the
    parts fail by the seed's plan, and the report counts the scenario's own infrastructure
    errors apart from its validations."""
    data = run_scenario(
        "delete-during-provision",
        "aap",
        tmp_path,
        "--state-dir",
        str(tmp_path / "stack"),
        "--via",
        "fulfillment",
        "--faults",
        str(FAULTS_SEED),
        "--fault-span",
        str(FAULT_SPAN_S),
    )
    assert data["via"] == "fulfillment"
    assert THROUGH_THE_API | DELETE_DURING_PROVISION_TRAIL["aap"] <= validation_names(data)
    infrastructure = data["infrastructure"]
    assert isinstance(infrastructure, dict)
    assert set(infrastructure) >= {"errors_seen", "retried", "budget_spent"}
    faults = json.loads((tmp_path / "stack" / "faults.json").read_text())
    assert faults["seed"] == FAULTS_SEED
    struck = {link: entry["faults_applied"] for link, entry in faults["links"].items()}
    assert set(struck) == LINKS
    assert all(count >= 2 for count in struck.values()), struck
