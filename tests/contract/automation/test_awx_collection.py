"""The awx.awx collection (shipped in the `ansible` package) against the automation service.

`clients/awx_collection.yml` runs job_launch (with wait), job_cancel, job_wait and job_list
through ansible-playbook and asserts what the modules report; this test then checks the
service's side: the jobs exist with those statuses and the canceled one stopped mid-way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudkit.local.automation import AutomationHandle
from tests.contract.automation.automation_client import HERE, Api
from tests.contract.automation.awx_tools import BIN, controller_env, run

pytestmark = pytest.mark.stack

PLAY = HERE / "clients" / "awx_collection.yml"


async def test_job_modules(automation: AutomationHandle, api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    result = await run(
        [str(BIN / "ansible-playbook"), str(PLAY), "-e", json.dumps({"marker": str(marker)})],
        controller_env(automation),
        cwd=tmp_path,
    )
    assert result.rc == 0, result.stdout[-4000:] + result.stderr[-2000:]

    _, jobs = await api.get("jobs/", params={"order_by": "id"})
    assert [(j["name"], j["status"]) for j in jobs["results"]] == [
        ("ok", "successful"),
        ("slow", "canceled"),
    ]
    first = jobs["results"][0]
    assert json.loads(first["extra_vars"]) == {"who": "collection"}
    # The refused launch never reached the service, and the canceled job never got past
    # its long task.
    assert jobs["count"] == 2 and not marker.exists()
