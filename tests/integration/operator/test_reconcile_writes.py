"""How many writes a reconcile pass makes, counted on a real API server and a real AWX-compatible
automation service (simulated job templates: AWX's job states and the playbooks' effects).

The reconciler is driven pass by pass in this process, so the moment of each pass is chosen by
the test, not by the watch: the counts are exact, not timing-dependent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from cloudkit.api import names
from cloudkit.lifecycle.types import EventType, RecordEvent
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.environment import aap_operator_env
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.operator_account import prepare_operator_kubeconfig
from cloudkit.operator.kube import InstanceKey, Kube, KubeError
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.reconcile import Reconciler
from cloudkit.operator.settings import load_settings
from cloudkit.operator.startup import build_provider, lifecycle_config

pytestmark = pytest.mark.stack

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
EVENTS_PATH = resource_path("", "v1", "events", namespace=INSTANCE_NAMESPACE)


@dataclass
class Bench:
    stack: StackHandle
    kube: KubeClient
    reconciler: Reconciler
    requests: Counter[str]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    stack = await start_stack(
        provider="aap",
        state_dir=tmp_path / "state",
        vm_boot_seconds=0.2,
        with_operator=False,
        job_notifications=False,
        simulated_jobs={"run_seconds": 0.3},
    )
    requests: Counter[str] = Counter()
    try:
        kubeconfig = await prepare_operator_kubeconfig(
            stack.kubeconfig, tmp_path / "operator-kubeconfig"
        )
        env = {
            "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
            **aap_operator_env(stack.automation_url, stack.automation_token_file),
            "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": INSTANCE_NAMESPACE,
        }
        settings = load_settings(env)
        operator_kube = await Kube.connect(
            kubeconfig, on_request=lambda verb: requests.update([verb])
        )
        reconciler = Reconciler(
            operator_kube,
            build_provider(settings),
            lifecycle_config(settings),
            OperatorMetrics(CollectorRegistry()),
        )
        async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
            try:
                yield Bench(stack, kube, reconciler, requests)
            finally:
                await reconciler.provider.close()
                await operator_kube.close()
    finally:
        await stack.stop()


async def until(read: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 30.0
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within 30 s; last value: {value}")
        await asyncio.sleep(0.1)


async def automation_job_status(stack: StackHandle, job_id: str) -> str:
    """The job's status as the automation service's API says (a bearer token, as AAP's)."""
    headers = {"Authorization": f"Bearer {stack.automation_token}"}
    url = f"{stack.automation_url.rstrip('/')}/v2/jobs/{job_id}/"
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as response:
        response.raise_for_status()
        return str((await response.json())["status"])


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("status") or {}


def job(obj: dict[str, Any] | None, field: str) -> dict[str, Any]:
    return status(obj).get(field) or {}


async def reconcile_until(
    bench: Bench, key: InstanceKey, check: Callable[[dict[str, Any] | None], bool]
) -> dict[str, Any] | None:
    async def one_pass() -> dict[str, Any] | None:
        await bench.reconciler.reconcile(key)
        return await bench.kube.get(f"{CI_PATH}/{key.name}")

    found: dict[str, Any] | None = await until(one_pass, check)
    return found


async def test_a_pass_that_sees_the_job_end_writes_the_status_once(bench: Bench) -> None:
    """The pass that observes the VM, the reconciled version and polls the finished job writes
    one status, not one before the poll and one after: a poll is only a read of the backend."""
    name = "one-write"
    key = InstanceKey(INSTANCE_NAMESPACE, name)
    await bench.kube.create(
        CI_PATH,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name},
            "spec": {"templateID": "tpl", "cores": 1, "memoryGiB": 1},
        },
    )
    await reconcile_until(bench, key, lambda obj: bool(job(obj, "provisionJob").get("id")))

    # The simulated job ends and its effects land (VM ready, version annotation) while no pass
    # runs; the next pass sees all of it at once.
    def finished(obj: dict[str, Any] | None) -> bool:
        annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
        applied = annotations.get(names.RECONCILED_CONFIG_VERSION_ANNOTATION)
        return applied is not None and applied == status(obj).get("desiredConfigVersion")

    await until(lambda: bench.kube.get(f"{CI_PATH}/{name}"), finished)
    job_id = job(await bench.kube.get(f"{CI_PATH}/{name}"), "provisionJob")["id"]
    await until(lambda: automation_job_status(bench.stack, job_id), lambda s: s == "successful")
    bench.requests.clear()
    await bench.reconciler.reconcile(key)
    after = await bench.kube.get(f"{CI_PATH}/{name}")
    assert status(after).get("phase") == "Ready", status(after)
    assert job(after, "provisionJob").get("state") == "Succeeded"
    assert status(after).get("reconciledConfigVersion") == status(after).get("desiredConfigVersion")
    assert bench.requests["PUT"] == 1, bench.requests


async def test_the_events_of_the_pass_that_removes_the_finalizer_are_recorded(
    bench: Bench,
) -> None:
    """The last pass's events (the deprovisioning job's end) are recorded although the object
    is gone when they are: they are the only trace of how the deletion ended."""
    name = "last-events"
    key = InstanceKey(INSTANCE_NAMESPACE, name)
    await bench.kube.create(
        CI_PATH,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name},
            "spec": {"templateID": "tpl", "cores": 1, "memoryGiB": 1},
        },
    )
    await reconcile_until(bench, key, lambda obj: status(obj).get("phase") == "Ready")
    await bench.kube.delete(f"{CI_PATH}/{name}")
    await reconcile_until(bench, key, lambda obj: obj is None)

    async def reasons() -> set[str]:
        listed = await bench.kube.list_objects(EVENTS_PATH)
        return {
            e.get("reason", "")
            for e in listed.get("items") or []
            if (e.get("involvedObject") or {}).get("name") == name
        }

    seen = await reasons()
    assert "DeprovisionJobSucceeded" in seen, sorted(seen)


async def test_an_event_the_server_refuses_is_an_error_naming_the_instance(bench: Bench) -> None:
    """The answer to an Event is not parsed, but its status still is: a refusal is reported."""
    refused = {
        "metadata": {
            "namespace": "no-such-namespace",
            "name": "ghost",
            "uid": "00000000-0000-0000-0000-000000000000",
            "resourceVersion": "1",
        }
    }
    with pytest.raises(KubeError) as raised:
        await bench.reconciler.kube.record_event(
            refused, RecordEvent(EventType.NORMAL, "Probe", "probe")
        )
    assert "no-such-namespace/ghost" in str(raised.value)
    assert raised.value.status in (403, 404), raised.value.status
