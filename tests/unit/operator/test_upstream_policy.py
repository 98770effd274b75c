"""The shell's part of upstream's policy (reference §3.1), the benchmarks' baseline
(CLOUDKIT_POLL_POLICY=fixed): one test per rule the shell owns. The core's rule (every pass
polls a running job, requeue the full interval) is tested in tests/unit/lifecycle."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from cloudkit.api import names
from cloudkit.operator.kube import InstanceKey
from cloudkit.operator.reconcile import next_pass
from cloudkit.operator.routing import Routes
from cloudkit.operator.settings import load_settings
from cloudkit.operator.startup import lifecycle_config
from cloudkit.operator.workqueue import WorkQueue

AAP = {
    "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
    "CLOUDKIT_AAP_URL": "http://aap.invalid/api",
    "CLOUDKIT_AAP_TOKEN": "t",
    "CLOUDKIT_AAP_PROVISION_TEMPLATE": "p",
    "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "d",
}
FIXED = lifecycle_config(load_settings({**AAP, "CLOUDKIT_POLL_POLICY": "fixed"}))
ADAPTIVE = lifecycle_config(load_settings(AAP))
DEADLINE = 5.0


def test_fixed_policy_polls_on_every_pass_instead_of_waiting_the_interval() -> None:
    """'The first poll after a change comes at once, then every 30 s': the baseline is the
    core's poll-every-pass rule with upstream's interval, not a first poll stretched to 30 s."""
    assert FIXED.poll_every_pass
    assert FIXED.poll_interval == timedelta(seconds=30)
    assert FIXED.first_poll < timedelta(seconds=1)
    assert not ADAPTIVE.poll_every_pass


def test_each_own_write_causes_one_more_pass_at_once() -> None:
    """'Its own status writes too, so each write causes one more pass at once.'"""
    interval = timedelta(seconds=30)
    assert next_pass(interval, wrote=True, config=FIXED) == timedelta(0)
    # A pass that finished (no requeue) still runs once more after its write, as upstream.
    assert next_pass(None, wrote=True, config=FIXED) == timedelta(0)
    # That extra pass writes nothing: it keeps the core's delay, so the chain ends.
    assert next_pass(interval, wrote=False, config=FIXED) == interval
    assert next_pass(None, wrote=False, config=FIXED) is None


def test_the_adaptive_policy_is_unchanged_by_its_own_writes() -> None:
    short = timedelta(milliseconds=500)
    assert next_pass(short, wrote=True, config=ADAPTIVE) == short
    assert next_pass(None, wrote=True, config=ADAPTIVE) is None


async def test_after_a_writing_pass_the_key_runs_at_once_then_after_the_interval() -> None:
    """'Polling is requeue-after': the extra pass comes at once (no write, so it asks for the
    interval), and the next one only when that requeue falls due. Real queue, short interval."""
    interval = timedelta(milliseconds=400)
    config = replace(FIXED, poll_interval=interval)
    writes = [True, False, False]
    runs: list[float] = []
    three = asyncio.Event()

    async def reconcile(_: str) -> float | None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 3:
            three.set()
        wrote = writes.pop(0) if writes else False
        delay = next_pass(interval, wrote=wrote, config=config)
        return None if delay is None or len(runs) >= 3 else delay.total_seconds()

    queue: WorkQueue[str] = WorkQueue(reconcile, workers=2)
    queue.start()
    try:
        queue.add("ns/a")
        await asyncio.wait_for(three.wait(), DEADLINE)
    finally:
        await queue.stop()
    assert runs[1] - runs[0] < 0.2, "the pass after a write must follow at once"
    assert runs[2] - runs[1] >= interval.total_seconds() - 0.01, "then the full interval"


def test_a_change_of_a_labelled_vm_wakes_its_instance() -> None:
    """'… and of a labelled VM (mapped by the label to the CR in the operator's namespace).'"""
    routes = Routes("cloudkit-computeinstance")
    labels = {names.VM_INSTANCE_LABEL: "ci-1"}
    assert routes.vm_event("tenant-x", "vm-1", labels, deleted=False) == [
        InstanceKey("cloudkit-computeinstance", "ci-1")
    ]
    assert routes.vm_event("tenant-x", "vm-2", {}, deleted=False) == []
