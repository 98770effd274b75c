"""The playbooks through real ansible-rulebook: the stack's EDA activation and webhook source.

The operator is left out: this test posts the ComputeInstance to the webhooks itself, as the
EDA provider does, and checks what the playbooks did on the API server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloudkit.api import names
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.waiting import until

pytestmark = pytest.mark.stack

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
VM_PATH = resource_path(
    names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, namespace=INSTANCE_NAMESPACE
)


@pytest.fixture
async def eda_stack(tmp_path: Path) -> AsyncIterator[StackHandle]:
    handle = await start_stack(
        provider="eda", state_dir=tmp_path / "state", vm_boot_seconds=0.5, with_operator=False
    )
    try:
        yield handle
    finally:
        await handle.stop()


async def test_webhooks_run_provision_and_deprovision(eda_stack: StackHandle) -> None:
    bearer = {"Authorization": f"Bearer {eda_stack.automation_token}"}
    async with (
        KubeClient.from_kubeconfig(eda_stack.kubeconfig) as kube,
        aiohttp.ClientSession() as http,
    ):
        created = await kube.create(
            CI_PATH,
            {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "metadata": {"name": "eda-one", "finalizers": [names.OPERATOR_FINALIZER]},
                "spec": {"templateID": "sample_template", "cores": 1, "memoryGiB": 1},
            },
        )
        payload = {**created, "status": {"desiredConfigVersion": "aa32274dc7191c79"}}
        url = f"{eda_stack.automation_url}/provision"
        async with http.post(
            url, json=payload, headers={"Authorization": "Bearer wrong"}
        ) as response:
            assert response.status == 401
        async with http.post(url, json=payload, headers=bearer) as response:
            assert response.status == 200

        def annotated(ci: dict[str, Any] | None) -> bool:
            annotations = (ci or {}).get("metadata", {}).get("annotations") or {}
            return annotations.get(names.RECONCILED_CONFIG_VERSION_ANNOTATION) == (
                "aa32274dc7191c79"
            )

        # Deadlines, not expectations: a playbook on a loaded machine can take minutes.
        ci = await until(lambda: kube.get(f"{CI_PATH}/eda-one"), annotated, within=300)
        assert names.AUTOMATION_FINALIZER in ci["metadata"]["finalizers"]
        vm = await kube.get(f"{VM_PATH}/eda-one")
        assert vm is not None and vm["status"]["ready"] is True

        await kube.delete(f"{CI_PATH}/eda-one")
        deleting = await kube.get(f"{CI_PATH}/eda-one")
        url = f"{eda_stack.automation_url}/deprovision"
        async with http.post(url, json=deleting, headers=bearer) as response:
            assert response.status == 200
        released = await until(
            lambda: kube.get(f"{CI_PATH}/eda-one"),
            lambda ci: names.AUTOMATION_FINALIZER not in (ci or {})["metadata"]["finalizers"],
            within=300,
        )
        assert released["metadata"]["finalizers"] == [names.OPERATOR_FINALIZER]
        assert await kube.get(f"{VM_PATH}/eda-one") is None
