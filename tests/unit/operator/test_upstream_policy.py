"""The shell's part of upstream's policy (reference §3.1), the benchmarks' baseline
(CLOUDKIT_POLL_POLICY=fixed): one test per rule the shell owns. The core's rule (every pass
polls a running job, requeue the full interval) is tested in tests/unit/lifecycle."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from cloudkit.api import names
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.reconcile import PassSchedule
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
DEADLINE = 30.0


def test_fixed_policy_polls_on_every_pass_instead_of_waiting_the_interval() -> None:
    """'The first poll after a change comes at once, then every 30 s': the baseline is the
    core's poll-every-pass rule with upstream's interval, not a first poll stretched to 30 s."""
    assert FIXED.poll_every_pass
    assert FIXED.poll_interval == timedelta(seconds=30)
    assert FIXED.first_poll < timedelta(seconds=1)
    assert not ADAPTIVE.poll_every_pass


KEY = InstanceKey("ns", "a")
INTERVAL = timedelta(seconds=30)


def test_each_own_write_causes_one_more_pass_at_once() -> None:
    """'Its own status writes too, so each write causes one more pass at once.'"""
    passes = PassSchedule(FIXED)
    assert passes.after_pass(KEY, INTERVAL, wrote=True, now=0.0) == timedelta(0)
    # That extra pass writes nothing: the requeue of the first pass stands, and the chain ends.
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=0.1) == timedelta(seconds=29.9)
    # A pass that finished (no requeue) still runs once more after its write, as upstream.
    done = PassSchedule(FIXED)
    assert done.after_pass(KEY, None, wrote=True, now=0.0) == timedelta(0)
    assert done.after_pass(KEY, None, wrote=False, now=0.1) is None


def test_passes_woken_by_events_do_not_postpone_the_requeue() -> None:
    """'Polling is requeue-after 30 s': a requeue is a timer; passes woken meanwhile (a VM
    event, the playbook's writes) poll too, but the earliest timer still fires on time, as
    client-go's delaying queue keeps the earliest time per key."""
    passes = PassSchedule(FIXED)
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=100.0) == INTERVAL
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=110.0) == timedelta(seconds=20)
    assert passes.after_pass(KEY, None, wrote=False, now=120.0) == timedelta(seconds=10)
    # The timer's own pass (at 130) starts the next 30 s.
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=130.0) == INTERVAL
    # A shorter wish (e.g. a rate limit's retry-after) comes first, as with AddAfter.
    assert passes.after_pass(KEY, timedelta(seconds=5), wrote=False, now=131.0) == timedelta(
        seconds=5
    )
    passes.forget(KEY)
    assert passes.after_pass(KEY, None, wrote=False, now=132.0) is None


def test_the_adaptive_policy_is_unchanged() -> None:
    passes = PassSchedule(ADAPTIVE)
    short = timedelta(milliseconds=500)
    assert passes.after_pass(KEY, short, wrote=True, now=0.0) == short
    assert passes.after_pass(KEY, None, wrote=True, now=0.1) is None
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=0.2) == INTERVAL
    assert passes.after_pass(KEY, INTERVAL, wrote=False, now=10.0) == INTERVAL


async def test_after_a_writing_pass_the_key_runs_at_once_then_after_the_interval() -> None:
    """The schedule on the real work queue: the pass after a write follows at once, and the
    next one only when the first pass's requeue falls due. The margins are a second wide, so a
    loaded machine cannot turn one behaviour into the other; that the extra pass does not
    postpone the requeue is pinned exactly, on the schedule's own clock, above."""
    interval = timedelta(seconds=2)
    passes = PassSchedule(replace(FIXED, poll_interval=interval))
    writes = [True, False, False]
    runs: list[float] = []
    three = asyncio.Event()

    async def reconcile(key: InstanceKey) -> float | None:
        now = asyncio.get_running_loop().time()
        runs.append(now)
        if len(runs) == 3:
            three.set()
            return None
        wrote = writes.pop(0) if writes else False
        delay = passes.after_pass(key, interval, wrote=wrote, now=now)
        return None if delay is None else delay.total_seconds()

    queue: WorkQueue[InstanceKey] = WorkQueue(reconcile, workers=2)
    queue.start()
    try:
        queue.add(KEY)
        await asyncio.wait_for(three.wait(), DEADLINE)
    finally:
        await queue.stop()
    seconds = interval.total_seconds()
    assert runs[1] - runs[0] < seconds / 2, "the pass after a write must follow at once"
    assert runs[2] - runs[0] >= seconds - 0.01, "then the first requeue, not before"
    assert runs[2] - runs[0] < seconds * 2, "and not a whole interval late"


def test_a_change_of_a_labelled_vm_wakes_its_instance() -> None:
    """'… and of a labelled VM (mapped by the label to the CR in the operator's namespace).'"""
    routes = Routes("cloudkit-computeinstance")
    labels = {names.VM_INSTANCE_LABEL: "ci-1"}
    assert routes.vm_event("tenant-x", "vm-1", labels, deleted=False) == [
        InstanceKey("cloudkit-computeinstance", "ci-1")
    ]
    assert routes.vm_event("tenant-x", "vm-2", {}, deleted=False) == []
