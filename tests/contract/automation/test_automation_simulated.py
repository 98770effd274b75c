"""Simulated jobs (`kind: simulated`) over the service's real API: AWX's states on the configured
durations, the same notifications, cancel, a simulated failure, what marks them as simulations,
and the playbooks' effects reached with the credentials the playbooks get. Which effects those
are is pinned by tests/contract/playbooks, which run the real playbooks and the simulation alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest
from cloudkit.local.apiserver.main import ApiServerHandle
from cloudkit.local.automation import AutomationHandle, start_automation_service
from cloudkit.local.automation.planning import TemplateError, parse_templates
from cloudkit.local.automation.simulation import DESCRIPTION_MARK, STDOUT_MARK
from cloudkit.local.kubevirt import start_vm_simulator
from cloudkit.local.stack.kube import KubeClient, resource_path
from tests.contract.automation.automation_client import Api
from tests.waiting import until

pytestmark = pytest.mark.stack

NS = "cloudkit-computeinstance"
WITHIN_S = 20.0


class Receiver:
    """Job notifications as they arrive: (job id, status)."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[tuple[int, str]] = []
        self.changed = asyncio.Event()

    async def statuses(self, job_id: int, until: str) -> list[str]:
        deadline = time.monotonic() + WITHIN_S
        while until not in (mine := [s for j, s in self.seen if j == job_id]):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"job {job_id}: only {mine} notified"
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), remaining)
        return mine


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        state.seen.append((int(body["id"]), str(body["status"])))
        state.changed.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


def simulated(name: str, notify: str | None = None, **simulate: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "kind": "simulated", "simulate": simulate}
    if notify:
        entry["notification"] = {"url": notify}
    return entry


@pytest.fixture
async def service(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Api]:
    templates = [
        simulated("quick", receiver.url, pending_seconds=0.1, waiting_seconds=0.1, run_seconds=0.3),
        simulated("long", receiver.url, run_seconds=60),
        simulated("broken", receiver.url, outcome="failed", run_seconds=0.1),
    ]
    handle = await start_automation_service(tmp_path / "state", templates)
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {handle.token}"}
        ) as session:
            yield Api(session, handle.url)
    finally:
        await handle.stop()


async def test_a_simulated_job_walks_awx_states_and_says_what_it_is(
    service: Api, receiver: Receiver
) -> None:
    launched = await service.launch("quick")
    job = await service.wait_status(launched["id"])
    assert job["status"] == "successful", job
    assert job["started"] and job["finished"] and job["elapsed"] >= 0.3, job
    notified = await receiver.statuses(job["id"], until="successful")
    assert notified == ["running", "successful"]  # AWX notifies started and success only

    status, stdout = await service.get(f"jobs/{job['id']}/stdout/", params={"format": "txt"})
    assert status == 200 and STDOUT_MARK in stdout, stdout
    status, template = await service.get(f"job_templates/{await service.template_id('quick')}/")
    assert template["description"].startswith(DESCRIPTION_MARK), template
    assert template["playbook"] == "(simulated) none", template


async def test_cancel_ends_a_running_simulated_job_as_canceled(
    service: Api, receiver: Receiver
) -> None:
    launched = await service.launch("long")
    await service.wait_status(launched["id"], {"running"})
    status, _ = await service.post(f"jobs/{launched['id']}/cancel/")
    assert status == 202
    job = await service.wait_status(launched["id"], within_s=5.0)
    assert (job["status"], job["job_explanation"]) == ("canceled", "Job was canceled"), job
    assert (await receiver.statuses(job["id"], until="canceled"))[-1] == "canceled"
    status, _ = await service.post(f"jobs/{launched['id']}/cancel/")
    assert status == 405


async def test_a_simulated_failure_fails_the_job(service: Api) -> None:
    launched = await service.launch("broken")
    job = await service.wait_status(launched["id"])
    assert job["status"] == "failed" and job["failed"] is True, job
    assert "Simulated job failed" in job["job_explanation"]


@pytest.mark.parametrize(
    ("simulate", "message"),
    [
        ({"effects": "reboot"}, "effects must be one of"),
        ({"outcome": "maybe"}, "outcome must be one of"),
        ({"run_seconds": -1}, "run_seconds must be finite and not negative"),
        ({"run_seconds": "2"}, "run_seconds must be a number"),
        ({"poll_seconds": 0}, "poll_seconds must be greater than 0"),
        ({"runs": 1}, "unknown keys ['runs']"),
    ],
)
def test_a_malformed_simulation_is_refused(simulate: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_templates([simulated("x", **simulate)], Path.cwd())


def test_simulate_belongs_to_simulated_templates_only() -> None:
    entry = {"name": "x", "playbook": "p.yml", "simulate": {"run_seconds": 1}}
    with pytest.raises(TemplateError, match="simulate needs kind simulated"):
        parse_templates([entry], Path.cwd())
    assert parse_templates([{"name": "x", "playbook": "p.yml"}], Path.cwd())[0].simulate is None


async def test_simulated_jobs_change_the_cluster_with_the_playbooks_credentials(
    apiserver: ApiServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the service: a provision job leaves the VM and the annotation, a deprovision
    job removes the VM and the automation finalizer. The service reads K8S_AUTH_KUBECONFIG,
    as the playbooks' kubernetes_api action does."""
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(apiserver.kubeconfig))
    simulator = await start_vm_simulator(apiserver.kubeconfig, boot_seconds=0.2, stop_seconds=0.2)
    templates = [
        simulated("provision", effects="provision", poll_seconds=0.1),
        simulated("deprovision", effects="deprovision", poll_seconds=0.1),
    ]
    handle = await start_automation_service(tmp_path / "automation", templates)
    try:
        async with KubeClient.from_kubeconfig(apiserver.kubeconfig) as kube:
            await _provision_and_deprovision(handle, kube)
    finally:
        await handle.stop()
        await simulator.stop()


async def _provision_and_deprovision(handle: AutomationHandle, kube: KubeClient) -> None:
    crds = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await kube.ensure(crds, crd_manifest())
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    await kube.ensure(resource_path("", "v1", "namespaces"), namespace)
    instances = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=NS)
    body = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "sim-one", "namespace": NS},
        "spec": {"templateID": "t", "cores": 3, "memoryGiB": 2},
    }

    async def create() -> dict[str, Any] | None:
        try:
            return dict(await kube.create(instances, body))
        except Exception:  # the CRD is served a moment after it is created
            return None

    created = await until(
        create,
        lambda made: made is not None,
        within=WITHIN_S,
        what="the ComputeInstance CRD served",
    )
    assert created is not None
    payload = {**created, "status": {"desiredConfigVersion": "abc123"}}
    extra_vars = {"ansible_eda": {"event": {"payload": payload}}}
    vm_path = resource_path(
        names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL, namespace=NS, name="sim-one"
    )
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {handle.token}"}
    ) as session:
        api = Api(session, handle.url)
        job = await api.wait_status(
            (await api.launch("provision", {"extra_vars": extra_vars}))["id"]
        )
        assert job["status"] == "successful", job
        vm = await kube.get(vm_path)
        assert vm is not None and vm["status"]["ready"] is True, vm
        assert vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 3
        instance = await kube.get(f"{instances}/sim-one")
        assert instance is not None
        annotations = instance["metadata"]["annotations"]
        assert annotations[names.RECONCILED_CONFIG_VERSION_ANNOTATION] == "abc123"
        assert instance["metadata"]["finalizers"] == [names.AUTOMATION_FINALIZER]

        await kube.delete(f"{instances}/sim-one")
        job = await api.wait_status(
            (await api.launch("deprovision", {"extra_vars": extra_vars}))["id"]
        )
        assert job["status"] == "successful", job
        assert await kube.get(vm_path) is None
    # The last finalizer left: the instance goes.
    await until(
        lambda: kube.get(f"{instances}/sim-one"),
        lambda found: found is None,
        within=WITHIN_S,
        what="the automation finalizer removed",
    )
