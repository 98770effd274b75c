"""Invalid ComputeInstances are rejected by the API server, naming the field, through kubectl.

The operator is not needed (nothing may reach it), so the stack runs without it. A valid
manifest passes a server-side dry run first: a rejection below is the field's, not the setup's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudkit.api import names
from tests.harness.stack_lab import NAMESPACE, Lab, open_lab

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL_TIMEOUT_S = 30.0


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "templateID": "cloudkit_templates_ocp_virt_vm",
        "cores": 1,
        "memoryGiB": 1,
        "runStrategy": "Always",
    }
    body.update(spec)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


async def kubectl_apply(lab: Lab, document: dict[str, Any], *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "--kubeconfig",
        str(lab.handle.kubeconfig),
        "apply",
        "-f",
        "-",
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(
        process.communicate(yaml.safe_dump(document).encode()), KUBECTL_TIMEOUT_S
    )
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "cores-zero": ({"cores": 0}, "spec.cores"),
    "no-template-id": ({"templateID": None}, "spec.templateID"),
    "bad-run-strategy": ({"runStrategy": "Sometimes"}, "spec.runStrategy"),
}


async def test_invalid_instances_rejected_naming_the_field(tmp_path: Path) -> None:
    async with open_lab(
        tmp_path / "stack", vm_boot_seconds=1.0, with_operator=False, with_fulfillment=False
    ) as lab:
        code, output = await kubectl_apply(lab, manifest("valid"), "--dry-run=server")
        assert code == 0, f"a valid instance was refused:\n{output}"

        problems = []
        for name, (spec, field) in INVALID.items():
            code, output = await kubectl_apply(lab, manifest(name, **spec))
            if code == 0 or field not in output:
                problems.append(
                    f"{name}: exit {code}, expected a rejection naming {field}:\n{output}"
                )
            if await lab.get(name) is not None:
                problems.append(f"{name}: stored despite the rejection")
        assert not problems, "\n".join(problems)
