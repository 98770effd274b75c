"""`cloudkit operator` with the EDA provider. The webhook endpoint here only records what it
receives (the real rulebook has its own contract test); the test then plays the playbook's
part on the resource, which is how EDA reports completion: the automation finalizer and the
reconciled-config-version annotation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from cloudkit.api import names
from tests.harness.operator_process import (
    NAMESPACE,
    AutomationService,
    Cluster,
    LoopThread,
    healthy,
    operator_env,
    start_operator,
    stop_operator,
    wait_until,
)

pytestmark = pytest.mark.stack


@dataclass
class Webhooks:
    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def names(self, endpoint: str) -> list[str]:
        return [body["metadata"]["name"] for path, body in self.received if path == endpoint]


@pytest.fixture(scope="module")
def webhooks(loop_thread: LoopThread) -> Iterator[Webhooks]:
    recorded = Webhooks("")

    async def receive(request: web.Request) -> web.Response:
        # The operator sends CLOUDKIT_EDA_WEBHOOK_TOKEN as a Bearer header, never in the URL.
        if request.headers.get("Authorization") != "Bearer eda-hook-token" or request.query:
            return web.Response(status=401)
        recorded.received.append((request.match_info["endpoint"], await request.json()))
        return web.json_response({}, status=200)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{endpoint}", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        recorded.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return runner

    runner = loop_thread.run(start())
    yield recorded
    loop_thread.run(runner.cleanup())


def patch_instance(cluster: Cluster, name: str, body: dict[str, Any]) -> None:
    cluster.custom.patch_namespaced_custom_object(
        names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name, body
    )


def test_eda_provision_and_deprovision(
    cluster: Cluster, automation: AutomationService, webhooks: Webhooks, tmp_path: Any
) -> None:
    env = operator_env(
        cluster,
        automation,
        CLOUDKIT_PROVISIONING_PROVIDER="eda",
        CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE="",  # all namespaces (kopf is cluster-wide anyway)
        CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK=f"{webhooks.url}/provision",
        CLOUDKIT_COMPUTE_INSTANCE_DELETE_WEBHOOK=f"{webhooks.url}/deprovision",
        CLOUDKIT_EDA_WEBHOOK_TOKEN="eda-hook-token",
    )
    for variable in ("CLOUDKIT_AAP_URL", "CLOUDKIT_AAP_TOKEN"):
        env.pop(variable)
    running = start_operator(env, tmp_path / "operator-eda.log")
    try:
        wait_until(lambda: healthy(running), timeout=60, what="operator health")
        name = "eda-instance"
        cluster.create(name)
        wait_until(
            lambda: webhooks.names("provision") == [name], timeout=30, what="provision webhook"
        )
        payload = next(body for path, body in webhooks.received if path == "provision")
        desired = payload["status"]["desiredConfigVersion"]
        assert names.OPERATOR_FINALIZER in payload["metadata"]["finalizers"]

        # What the provisioning playbook does.
        obj = cluster.get(name)
        assert obj is not None
        patch_instance(
            cluster,
            name,
            {
                "metadata": {
                    "finalizers": [*obj["metadata"]["finalizers"], names.AUTOMATION_FINALIZER],
                    "annotations": {names.RECONCILED_CONFIG_VERSION_ANNOTATION: desired},
                }
            },
        )

        def ready() -> dict[str, Any] | None:
            found = cluster.get(name)
            return found if (found or {}).get("status", {}).get("phase") == "Ready" else None

        obj = wait_until(ready, timeout=30, what="phase Ready")
        assert obj["status"]["provisionJob"]["id"].startswith("eda-webhook")

        cluster.delete(name)
        wait_until(
            lambda: webhooks.names("deprovision") == [name], timeout=30, what="deprovision webhook"
        )
        assert cluster.get(name) is not None  # held until the automation says it is done
        # What the deprovisioning playbook does at its end.
        obj = cluster.get(name)
        assert obj is not None
        remaining = [f for f in obj["metadata"]["finalizers"] if f != names.AUTOMATION_FINALIZER]
        patch_instance(cluster, name, {"metadata": {"finalizers": remaining}})
        wait_until(lambda: cluster.get(name) is None, timeout=30, what="deletion")
        assert webhooks.names("deprovision") == [name]
        assert webhooks.names("provision") == [name]
        stop_operator(running)
        assert running.process.returncode == 0, "SIGTERM should stop the operator cleanly"
    finally:
        stop_operator(running)
        print(running.log()[-4000:])
