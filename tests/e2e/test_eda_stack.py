"""One `cloudkit up --provider eda`, used as people use it: the end-to-end scenarios
(`cloudkit scenario … --kubeconfig`, and `cloudkit login` for the tenant's way), then its state
directory checked private (the stack runs with umask 0, and by then playbooks have run).

Each scenario has its own instance. ansible-rulebook runs the real playbooks (EDA has no
simulated jobs), which makes each scenario here costly: a deletion mid-provision runs once,
through the fulfillment API, whose report carries every validation of the direct run (the same
EDA trail: the provision job succeeded only on the playbook's report, at most one deprovision
job, the resource gone, no VM left) and the order's; creating and deleting the resource directly
is the lifecycle's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import scenario_runs
from tests.harness.up import Up, exposed_state

# The stack's start-up (ansible-rulebook's JVM included) lands in the first test's time.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    yield from scenario_runs.shared_stack(tmp_path_factory, "eda")


def test_lifecycle(stack: Up, tmp_path: Path) -> None:
    scenario_runs.lifecycle(stack, tmp_path)


def test_delete_during_provision_via_fulfillment(stack: Up, tmp_path: Path) -> None:
    scenario_runs.delete_during_provision_via_fulfillment(stack, tmp_path)


def test_restart(stack: Up, tmp_path: Path) -> None:
    scenario_runs.restart(stack, tmp_path)


def test_the_stack_state_is_private(stack: Up) -> None:
    eda = stack.state_dir / "eda"
    # The activation's variables and the operator's copy of the token hold the webhook
    # token; ansible-rulebook writes its log and port file on its own.
    assert {"vars.yml", "webhook-token", "webhook-port"} <= {p.name for p in eda.iterdir()}
    exposed = exposed_state(stack.state_dir)
    assert exposed == [], "readable by others:\n" + "\n".join(exposed)
