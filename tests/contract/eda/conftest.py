"""Fixtures for the EDA contract tests: one real ansible-rulebook activation per module.

ansible-rulebook starts a JVM (its rule engine), which takes seconds, so the activation is
module-scoped. The test playbooks (./playbooks) write what they received to `eda_out_dir`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cloudkit.local.eda import EdaHandle, start_eda_activation

PLAYBOOKS = Path(__file__).parent / "playbooks"


@pytest.fixture(scope="module")
def eda_out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eda-out")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def activation(
    tmp_path_factory: pytest.TempPathFactory, eda_out_dir: Path
) -> AsyncIterator[EdaHandle]:
    handle = await start_eda_activation(
        tmp_path_factory.mktemp("eda-state"),
        provision_playbook=PLAYBOOKS / "provision.yml",
        deprovision_playbook=PLAYBOOKS / "deprovision.yml",
        env={"CLOUDKIT_TEST_EDA_OUT": str(eda_out_dir)},
        token="",
    )
    print(f"\nansible-rulebook answered {handle.started_in_s:.2f}s after spawn")
    try:
        yield handle
    finally:
        await handle.stop()
