"""How many writes a reconcile pass makes, counted on a real API server and a real AWX-compatible
automation service (simulated job templates: AWX's job states and the playbooks' effects).

The reconciler is driven pass by pass in this process, so the moment of each pass is chosen by
the test, not by the watch: the counts are exact, not timing-dependent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cloudkit.api import names
from cloudkit.lifecycle.types import EventType, RecordEvent
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle
from cloudkit.local.stack.kube import resource_path
from cloudkit.operator.kube import Conflict, KubeError
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.notifications import job_reading_of
from tests.harness.in_process import (
    InProcess,
    ReconcilerStack,
    in_process_reconciler,
)
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

CI_PATH = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)
EVENTS_PATH = resource_path("", "v1", "events", namespace=INSTANCE_NAMESPACE)


@pytest_asyncio.fixture(loop_scope="module")
async def in_process(shared_stack: ReconcilerStack) -> AsyncIterator[InProcess]:
    async with in_process_reconciler(shared_stack) as lab:
        yield lab


async def automation_job(stack: StackHandle, job_id: str) -> dict[str, Any]:
    """The job as the automation service's API has it (a bearer token, as AAP's)."""
    headers = {"Authorization": f"Bearer {stack.automation_token}"}
    url = f"{stack.automation_url.rstrip('/')}/v2/jobs/{job_id}/"
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as response:
        response.raise_for_status()
        found: dict[str, Any] = await response.json()
        return found


async def automation_job_status(stack: StackHandle, job_id: str) -> str:
    return str((await automation_job(stack, job_id))["status"])


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("status") or {}


def job(obj: dict[str, Any] | None, field: str) -> dict[str, Any]:
    return status(obj).get(field) or {}


async def reconcile_until(
    in_process: InProcess, key: InstanceKey, check: Callable[[dict[str, Any] | None], bool]
) -> dict[str, Any] | None:
    async def one_pass() -> dict[str, Any] | None:
        await in_process.reconciler.reconcile(key)
        current: dict[str, Any] | None = await in_process.kube.get(f"{CI_PATH}/{key.name}")
        return current

    found: dict[str, Any] | None = await until(one_pass, check, within=30)
    return found


async def create(
    in_process: InProcess, name: str, labels: dict[str, str] | None = None
) -> InstanceKey:
    await in_process.kube.create(
        CI_PATH,
        {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"templateID": "tpl", "cores": 1, "memoryGiB": 1},
        },
    )
    return InstanceKey(INSTANCE_NAMESPACE, name)


async def test_a_pass_that_sees_the_job_end_writes_the_status_once(
    in_process: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The pass that observes the VM, the reconciled version and polls the finished job writes
    one status, not one before the poll and one after: a poll is only a read of the backend.
    It logs one line, on the decision it ends with, naming the I/O it ran."""
    name = "one-write"
    key = await create(in_process, name)
    await reconcile_until(in_process, key, lambda obj: bool(job(obj, "provisionJob").get("id")))

    # The simulated job ends and its effects land (VM ready, version annotation) while no pass
    # runs; the next pass sees all of it at once.
    def finished(obj: dict[str, Any] | None) -> bool:
        annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
        applied = annotations.get(names.RECONCILED_CONFIG_VERSION_ANNOTATION)
        return applied is not None and applied == status(obj).get("desiredConfigVersion")

    await until(lambda: in_process.kube.get(f"{CI_PATH}/{name}"), finished, within=30)
    job_id = job(await in_process.kube.get(f"{CI_PATH}/{name}"), "provisionJob")["id"]
    await until(
        lambda: automation_job_status(in_process.stack, job_id),
        lambda s: s == "successful",
        within=30,
    )
    in_process.requests.clear()
    caplog.set_level(logging.INFO, logger="cloudkit.operator")
    caplog.clear()
    await in_process.reconciler.reconcile(key)
    lines = [r.getMessage() for r in caplog.records if " phase=" in r.getMessage()]
    assert len(lines) == 1 and "phase=Ready" in lines[0] and "io=PollJob " in lines[0], lines
    after = await in_process.kube.get(f"{CI_PATH}/{name}")
    assert status(after).get("phase") == "Ready", status(after)
    assert job(after, "provisionJob").get("state") == "Succeeded"
    assert status(after).get("reconciledConfigVersion") == status(after).get("desiredConfigVersion")
    assert in_process.requests["PUT"] == 1, in_process.requests


async def test_a_notified_reading_is_taken_instead_of_a_poll_and_a_late_one_is_not(
    in_process: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The same pass as above, its job's end heard from an authenticated notification (the
    receiver hands on the body AWX sends, the job as its API has it): the pass takes it as
    the reading and polls nothing. A notification delivered late, or announcing again what the
    status records, wakes nobody, and a pass it reaches anyway changes nothing."""
    name = "notified"
    key = await create(in_process, name)
    await reconcile_until(in_process, key, lambda obj: bool(job(obj, "provisionJob").get("id")))
    job_id = job(await in_process.kube.get(f"{CI_PATH}/{name}"), "provisionJob")["id"]
    ended = await until(
        lambda: automation_job(in_process.stack, job_id),
        lambda found: found["status"] == "successful",
        within=30,
    )
    reading = job_reading_of(ended)
    assert reading is not None and reading.job_id == job_id
    assert in_process.reconciler.heard(key, reading), "news: the job is Pending in the status"
    caplog.set_level(logging.INFO, logger="cloudkit.operator")
    caplog.clear()
    await reconcile_until(in_process, key, lambda obj: status(obj).get("phase") == "Ready")
    lines = [r.getMessage() for r in caplog.records if " phase=" in r.getMessage()]
    assert lines and not any("PollJob" in line for line in lines), lines
    assert job(await in_process.kube.get(f"{CI_PATH}/{name}"), "provisionJob")["state"] == (
        "Succeeded"
    )

    late = job_reading_of({**ended, "status": "running"})
    assert late is not None
    in_process.reconciler.notified.forget(key)
    assert not in_process.reconciler.heard(key, late), "no news: wakes nobody"
    assert not in_process.reconciler.heard(key, reading), "announced again: no news either"
    other = job_reading_of({**ended, "id": int(job_id) + 1000})
    assert other is not None and in_process.reconciler.heard(key, other), "a job not recorded"
    in_process.requests.clear()
    caplog.clear()
    await in_process.reconciler.reconcile(key)
    after = await in_process.kube.get(f"{CI_PATH}/{name}")
    assert job(after, "provisionJob")["state"] == "Succeeded", job(after, "provisionJob")
    assert in_process.requests["PUT"] == 0, in_process.requests
    # A pass that changed nothing says so at DEBUG only: the last line still says its state.
    said = [(r.levelno, r.getMessage()) for r in caplog.records if " phase=" in r.getMessage()]
    assert [level for level, _ in said] in ([], [logging.DEBUG]), said


async def test_an_ordered_instance_has_the_feedbacks_finalizer_before_its_job_starts(
    in_process: InProcess,
) -> None:
    """With the feedback on, the operator's finalizer write carries the feedback's too, before
    the launch: the provision job's guarded finalizer patch finds nothing moving under it (the
    feedback adding its own later failed that patch, and the job, under load)."""
    in_process.reconciler.feedback = True
    name = "ordered"
    key = await create(in_process, name, {names.INSTANCE_UUID_LABEL: "order-1"})
    launched = await reconcile_until(
        in_process, key, lambda obj: bool(job(obj, "provisionJob").get("id"))
    )
    assert launched is not None
    finalizers = launched["metadata"].get("finalizers") or []
    assert finalizers[:2] == [names.OPERATOR_FINALIZER, names.FEEDBACK_FINALIZER], finalizers
    unordered = await create(in_process, "unordered")
    plain = await reconcile_until(
        in_process, unordered, lambda obj: bool(job(obj, "provisionJob").get("id"))
    )
    assert names.FEEDBACK_FINALIZER not in ((plain or {})["metadata"].get("finalizers") or [])


async def test_the_events_of_the_pass_that_removes_the_finalizer_are_recorded(
    in_process: InProcess,
) -> None:
    """The last pass's events (the deprovisioning job's end) are recorded although the object
    is gone when they are: they are the only trace of how the deletion ended."""
    name = "last-events"
    key = await create(in_process, name)
    await reconcile_until(in_process, key, lambda obj: status(obj).get("phase") == "Ready")
    await in_process.kube.delete(f"{CI_PATH}/{name}")
    await reconcile_until(in_process, key, lambda obj: obj is None)

    async def reasons() -> set[str]:
        listed = await in_process.kube.list_objects(EVENTS_PATH)
        return {
            e.get("reason", "")
            for e in listed.get("items") or []
            if (e.get("involvedObject") or {}).get("name") == name
        }

    seen = await reasons()
    assert "DeprovisionJobSucceeded" in seen, sorted(seen)


async def test_a_status_write_is_guarded_by_the_version_it_was_computed_from(
    in_process: InProcess,
) -> None:
    """The status write (one request, its body dumped once): the object as written, a Conflict
    on a stale resourceVersion, None once the object is gone, and a refusal an error naming
    the instance, all counted by the requests metric."""
    kube = in_process.reconciler.kube
    name = "guarded"
    await create(in_process, name)
    read = await in_process.kube.get(f"{CI_PATH}/{name}")
    assert read is not None
    in_process.requests.clear()
    written = await kube.replace_status(read, {"phase": "Progressing"})
    assert written is not None and written["status"]["phase"] == "Progressing"
    assert written["metadata"]["resourceVersion"] != read["metadata"]["resourceVersion"]
    assert in_process.requests["PUT"] == 1, in_process.requests
    with pytest.raises(Conflict):
        await kube.replace_status(read, {"phase": "Failed"})  # the version before the write
    with pytest.raises(KubeError) as raised:
        await kube.replace_status(written, {"phase": 12})  # refused by the CRD's schema
    assert not isinstance(raised.value, Conflict) and raised.value.status == 422
    assert f"{INSTANCE_NAMESPACE}/{name}" in str(raised.value), str(raised.value)
    await in_process.kube.delete(f"{CI_PATH}/{name}")
    assert await kube.replace_status(written, {"phase": "Failed"}) is None


async def test_an_event_the_server_refuses_is_an_error_naming_the_instance(
    in_process: InProcess,
) -> None:
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
        await in_process.reconciler.kube.record_event(
            refused, RecordEvent(EventType.NORMAL, "Probe", "probe")
        )
    assert "no-such-namespace/ghost" in str(raised.value)
    assert raised.value.status in (403, 404), raised.value.status
