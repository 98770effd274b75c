"""Where AAP direct's overhead goes: the operator's reactions apart from Ansible's own tail.

`cloudkit bench latency` times a job from its launch recorded on the instance to the playbook's
last mark on it (the config-version annotation; the automation finalizer removed), marks that
exist for both providers on any cluster. With AAP direct the operator must then wait for AWX to
report the job finished before Ready, and before it removes its finalizer ("the finalizer goes
only when cleanup succeeded"); whatever Ansible does after its last mark (the play recap, the
process's exit, the service recording it) therefore lands in that report's "operator overhead".
This benchmark runs lifecycles with the real playbooks on a local stack (AAP direct, job
notifications on) and splits the cycle with the automation service's own job times (AWX's
`created` and `finished`), on one wall clock:

  launch_provision_s / launch_deprovision_s        create (delete) sent → AWX job created
  ready_after_job_finished_s                       AWX provision job finished → phase Ready
  gone_after_job_finished_s                        AWX deprovision job finished → object gone
                                                   (negative: released at the playbook's mark)
  provision_tail_s / deprovision_tail_s            the playbook's last mark → AWX job finished
  operator_share                                   (cycle − both AWX jobs) ÷ cycle
  mark_share                                       (cycle − both jobs by the marks) ÷ cycle: the
                                                   latency report's definition

Prints one JSON document (means over the lifecycles, and every lifecycle under `lifecycles`).

    .venv/bin/python benchmarks/aap_overhead.py [--parallel 3] [--vm-boot-seconds 5]
        [--timeout 900]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lifecycle  # the sibling benchmark: the automation's job list and the instance shape
from cloudkit.api import names
from cloudkit.bench.baseline import job_records
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.supervisor import INSTANCE_NAMESPACE

INSTANCES = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=INSTANCE_NAMESPACE)


@dataclass
class Seen:
    """Wall-clock times (time.time()) at which one instance's steps were sent or first seen."""

    created: float = 0.0
    provision_mark: float | None = None
    ready: float | None = None
    deleted: float = 0.0
    provision_launched: float | None = None
    deprovision_launched: float | None = None
    had_automation_finalizer: bool = False
    deprovision_mark: float | None = None
    gone: float | None = None


@dataclass
class Timeline:
    seen: dict[str, Seen] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.time()
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        one = self.seen.get(meta.get("name", ""))
        if one is None:
            return
        if (status.get("provisionJob") or {}).get("id") and one.provision_launched is None:
            one.provision_launched = now
        if (status.get("deprovisionJob") or {}).get("id") and one.deprovision_launched is None:
            one.deprovision_launched = now
        annotations = meta.get("annotations") or {}
        if names.RECONCILED_CONFIG_VERSION_ANNOTATION in annotations:
            one.provision_mark = one.provision_mark or now
        finalizers = meta.get("finalizers") or []
        if names.AUTOMATION_FINALIZER in finalizers:
            one.had_automation_finalizer = True
        elif one.had_automation_finalizer and one.deprovision_mark is None:
            one.deprovision_mark = now
        if status.get("phase") == "Ready":
            one.ready = one.ready or now
        if kind == "DELETED":
            one.gone = now
        self.changed.set()

    async def until(self, done: Any, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def _lifecycles(kubeconfig: Path, count: int, within_s: float) -> Timeline:
    """`count` instances created at once; each deleted when Ready; wait until all are gone."""
    timeline = Timeline()
    names_ = [f"aap-overhead-{i}" for i in range(count)]
    async with (
        KubeClient.from_kubeconfig(kubeconfig) as kube,
        KubeClient.from_kubeconfig(kubeconfig) as watcher,
    ):
        listing = await watcher.list_objects(INSTANCES)

        async def watch() -> None:
            rv = listing["metadata"]["resourceVersion"]
            while True:
                async for kind, obj in watcher.watch(INSTANCES, rv, timeoutSeconds="300"):
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        timeline.on_event(kind, obj)

        async def one(name: str) -> None:
            seen = timeline.seen[name] = Seen(created=time.time())
            await kube.create(INSTANCES, lifecycle._manifest(name, INSTANCE_NAMESPACE))
            await timeline.until(lambda: seen.ready is not None, within_s)
            seen.deleted = time.time()
            await kube.delete(f"{INSTANCES}/{name}")
            await timeline.until(lambda: seen.gone is not None, within_s)

        watching = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(one(name) for name in names_))
        finally:
            watching.cancel()
    return timeline


def _awx_jobs(stack: StackHandle) -> dict[tuple[str, str], dict[str, float]]:
    """(instance, provision|deprovision) → the successful job's created and finished (epoch s)."""
    return {
        (job.instance, job.kind): {"created": job.created, "finished": job.finished}
        for job in job_records(lifecycle._jobs(stack))
        if job.status == "successful" and job.finished is not None
    }


async def _awx_jobs_ended(
    stack: StackHandle, names_: Iterable[str], within_s: float
) -> dict[tuple[str, str], dict[str, float]]:
    """`_awx_jobs` once every instance's two jobs ended: the operator releases a deleted
    instance at the deprovision playbook's last mark, before AWX records the job's end."""
    wanted = {(name, kind) for name in names_ for kind in ("provision", "deprovision")}
    deadline = time.monotonic() + within_s
    while True:
        awx = await asyncio.to_thread(_awx_jobs, stack)
        if wanted <= awx.keys():
            return awx
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"AWX jobs not successful within {within_s:g} s: {wanted - awx.keys()}"
            )
        await asyncio.sleep(0.2)  # the service has no wait-for-job call: read again


def _split(seen: Seen, awx: dict[str, dict[str, float]]) -> dict[str, float]:
    assert seen.ready and seen.gone and seen.provision_mark and seen.deprovision_mark
    assert seen.provision_launched and seen.deprovision_launched
    up, down = awx["provision"], awx["deprovision"]
    cycle = (seen.ready - seen.created) + (seen.gone - seen.deleted)
    jobs = (up["finished"] - up["created"]) + (down["finished"] - down["created"])
    by_marks = (seen.provision_mark - seen.provision_launched) + (
        seen.deprovision_mark - seen.deprovision_launched
    )
    return {
        "cycle_s": cycle,
        "launch_provision_s": up["created"] - seen.created,
        "ready_after_job_finished_s": seen.ready - up["finished"],
        "launch_deprovision_s": down["created"] - seen.deleted,
        "gone_after_job_finished_s": seen.gone - down["finished"],
        "provision_tail_s": up["finished"] - seen.provision_mark,
        "deprovision_tail_s": down["finished"] - seen.deprovision_mark,
        "operator_share": (cycle - jobs) / cycle,
        "mark_share": (cycle - by_marks) / cycle,
    }


async def measure(parallel: int, boot: float, within_s: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ck-aap-overhead-") as tmp:
        stack = await start_stack(
            provider="aap", state_dir=Path(tmp), vm_boot_seconds=boot, with_fulfillment=False
        )
        try:
            timeline = await _lifecycles(stack.kubeconfig, parallel, within_s)
            awx = await _awx_jobs_ended(stack, timeline.seen.keys(), within_s)
        finally:
            await stack.stop()
    rows = {
        name: _split(seen, {kind: awx[(name, kind)] for kind in ("provision", "deprovision")})
        for name, seen in sorted(timeline.seen.items())
    }
    keys = next(iter(rows.values())).keys()
    means = {key: round(statistics.mean(row[key] for row in rows.values()), 4) for key in keys}
    return {
        "benchmark": "aap_overhead",
        "provider": "aap",
        "parallel": parallel,
        "vm_boot_seconds": boot,
        **means,
        "lifecycles": {n: {k: round(v, 4) for k, v in row.items()} for n, row in rows.items()},
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=3, help="lifecycles at once")
    parser.add_argument("--vm-boot-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.parallel, args.vm_boot_seconds, args.timeout))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
