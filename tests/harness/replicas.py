"""The leader-election proofs' lab: a full local stack run with operator replicas that the tests
start, SIGTERM, SIGKILL and cut off from the API server, and the Lease read as they go.

Built on the resilience lab (its recorder of every instance version, its automation-service
reader, its instance helpers): a replica is the `cloudkit operator` command the stack started,
started again with its own identity (a new pod) and ports, exactly as `cloudkit up
--operator-replicas` starts them. A replica cut off from the API server talks to it through the
stack's fault relay (`cloudkit.local.stack.faults`), which once silent swallows every byte (a
partition: requests hang rather than fail fast); its AAP traffic goes through a second relay
that timestamps every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.local.stack import start_stack
from cloudkit.local.stack.faults import FaultRelay
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.ports import free_port
from cloudkit.local.stack.procs import Child, spawn, wait_for_port
from cloudkit.scenarios.validations import Validation
from tests.harness.checks import all_jobs_terminal, no_overlapping_jobs
from tests.harness.stack_lab import (
    AutomationJob,
    AutomationJobs,
    ChildSpec,
    Lab,
    Recorder,
    describe,
    phase,
)
from tests.waiting import until

LEASE_NAMESPACE, LEASE_NAME = "cloudkit-operator-system", "cloudkit-operator-leader"
LEASE = resource_path(
    "coordination.k8s.io", "v1", "leases", namespace=LEASE_NAMESPACE, name=LEASE_NAME
)
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 15.0, 10.0, 2.0
"""The operator's defaults (controller-runtime's): the proofs run with them."""
START_S = 90.0

__all__ = ["AutomationJob", "AutomationJobs", "describe", "phase"]


@dataclass
class LeaderLab:
    lab: Lab
    spec: ChildSpec
    """How the stack started its first operator: every replica is that command."""
    replicas: dict[str, Child] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    relays: list[FaultRelay] = field(default_factory=list)
    plain: set[str] = field(default_factory=set)
    """Replicas started as the stack starts its own (no other settings, no other kubeconfig)."""
    _serial: int = 1

    @property
    def recorder(self) -> Recorder:
        return self.lab.recorder

    # --- the Lease --------------------------------------------------------------------------

    async def lease(self) -> dict[str, Any]:
        found = await self.lab.kube.get(LEASE)
        return dict((found or {}).get("spec") or {})

    async def holder(self) -> str:
        return str((await self.lease()).get("holderIdentity") or "")

    async def wait_holder(self, accept: set[str], within: float) -> tuple[str, float]:
        """Until one of `accept` holds the Lease; (holder, monotonic time first seen)."""
        holder = await until(
            self.holder, lambda h: h in accept, within=within, what=f"a holder in {sorted(accept)}"
        )
        return holder, time.monotonic()

    # --- replicas ---------------------------------------------------------------------------

    def fresh_name(self) -> str:
        self._serial += 1
        return f"replica-{self._serial}"

    async def start_replica(
        self,
        name: str | None = None,
        *,
        env: dict[str, str] | None = None,
        kubeconfig: Path | None = None,
        wait_ready: bool = True,
    ) -> str:
        """One more `cloudkit operator`, with identity `name` (a new pod) and its own ports."""
        name = name or self.fresh_name()
        health, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        child_env = {
            **self.spec.env,
            "CLOUDKIT_HEALTH_ADDRESS": health,
            "CLOUDKIT_METRICS_ADDRESS": metrics,
            "CLOUDKIT_LEADER_ELECTION_IDENTITY": name,
            **(env or {}),
        }
        argv = list(self.spec.argv)
        if kubeconfig is not None:
            argv[argv.index("--kubeconfig") + 1] = str(kubeconfig)
        child = await spawn(
            name,
            argv,
            env=child_env,
            log_dir=self.lab.handle.state_dir / "logs",
            sink=None,
            cwd=self.spec.cwd,
        )
        self.lab.handle.children.append(child)
        self.adopt(name, child, health=health, metrics=metrics, plain=not env and not kubeconfig)
        host, port = health.rsplit(":", 1)
        await wait_for_port(host, int(port), child, START_S)
        child.collecting = False
        if wait_ready:
            await self.wait_ready(name)
        return name

    def adopt(self, name: str, child: Child, *, health: str, metrics: str, plain: bool) -> None:
        """A running replica (`health`, `metrics`: its host:port addresses) is the lab's."""
        self.replicas[name] = child
        self.health[name], self.metrics[name] = health, metrics
        if plain:
            self.plain.add(name)

    async def ready(self, name: str) -> dict[str, Any] | None:
        """/readyz of a replica: its body when ready (200), else None."""
        url = f"http://{self.health[name]}/readyz"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(url) as response,
            ):
                body: dict[str, Any] = await response.json()
                return body if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def wait_ready(self, name: str, within: float = START_S) -> dict[str, Any]:

        async def read() -> dict[str, Any] | None:
            child = self.replicas[name]
            assert child.process.returncode is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            return await self.ready(name)

        body: dict[str, Any] | None = await until(
            read, lambda b: b is not None, within=within, what=f"{name} ready", interval=0.1
        )
        assert body is not None
        return body

    async def reconciles(self, name: str) -> float:
        """How many reconciles the replica ran (its cloudkit_reconcile_duration_seconds count)."""
        url = f"http://{self.metrics[name]}/metrics"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(url) as response,
        ):
            text = await response.text()
        match = re.search(r"^cloudkit_reconcile_duration_seconds_count (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    async def signal(self, name: str, sig: signal.Signals) -> tuple[int, float]:
        """Send `sig` to a replica and reap it: (exit code, monotonic time of its exit)."""
        child = self.replicas.pop(name)
        child.stopping = True  # the stack's supervisor must not report it as a failure
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
        code = await asyncio.wait_for(child.process.wait(), 60)
        exited = time.monotonic()
        await child.stop()
        return code, exited

    async def stop_all(self) -> None:
        for name in list(self.replicas):
            await self.signal(name, signal.SIGTERM)

    def log(self, name: str) -> str:
        return (self.lab.handle.state_dir / "logs" / f"{name}.log").read_text(errors="replace")

    async def relay(self, url: str) -> FaultRelay:
        match = re.match(r"^\w+://([^/:]+):(\d+)", url)
        assert match, url
        relay = FaultRelay(match.group(1), int(match.group(2)))
        await relay.start()
        self.relays.append(relay)
        return relay

    # --- lifecycles -------------------------------------------------------------------------

    async def lifecycle(self, name: str, *, within: float, delete: bool = True) -> str | None:
        """create → Ready (→ delete → gone); None when done, else what went wrong."""
        rec = self.recorder
        try:
            await self.lab.create(name)
            await rec.wait_for(
                lambda: phase(rec.latest(name)) == "Ready", within=within, what=f"{name} Ready"
            )
            if delete:
                await self.lab.delete(name)
                await rec.wait_for(lambda: name in rec.gone, within=within, what=f"{name} gone")
        except AssertionError as error:
            return f"{error}; last {describe(rec.latest(name))}"
        return None

    async def exactly_once(self, instance_names: list[str]) -> list[str]:
        """Problems, if any: per instance exactly one provision and (if deleted) one deprovision
        job, none overlapping, all terminal; and no VM left for the deleted ones."""
        jobs = await self.lab.automation.jobs()
        problems = []
        for name in instance_names:
            mine = [j for j in jobs if j.instance == name]
            kinds = [j.kind for j in mine]
            want = ["deprovision", "provision"] if name in self.recorder.gone else ["provision"]
            checks = [
                Validation("one-job-per-kind", sorted(kinds) == want, f"jobs {kinds}"),
                no_overlapping_jobs(mine),
                all_jobs_terminal(mine),
            ]
            if name in self.recorder.gone:
                vms = await self.lab.vms(name)
                checks.append(Validation("no-orphan-vm", not vms, f"VMs {vms}"))
            problems += [f"{name}: {c.name}: {c.detail}" for c in checks if not c.passed]
        return problems


@contextlib.asynccontextmanager
async def open_leader_lab(
    state_dir: Path, *, vm_boot_seconds: float, simulated_jobs: dict[str, Any] | None = None
) -> AsyncIterator[LeaderLab]:
    """A stack whose own operator is the lab's first replica (its Lease holder, a plain one):
    the tests start the others they need with its command, environment and working directory,
    and stop it when they want replicas of their own. simulated_jobs:
    the automation service's simulated templates (the playbooks' effects without Ansible).
    No fulfillment service: leadership is the operator's alone."""
    handle = await start_stack(
        provider="aap",
        state_dir=state_dir,
        vm_boot_seconds=vm_boot_seconds,
        simulated_jobs=simulated_jobs,
        with_fulfillment=False,
    )
    try:
        async with KubeClient.from_kubeconfig(handle.kubeconfig) as kube:
            first = next(c for c in handle.children if c.name == "operator")
            spec = ChildSpec.of(first)
            recorder = Recorder(kube)
            lab = Lab(handle, kube, AutomationJobs(handle), recorder)
            await recorder.start()
            leader_lab = LeaderLab(lab, spec)
            identity = spec.env["CLOUDKIT_LEADER_ELECTION_IDENTITY"]
            leader_lab.adopt(
                identity,
                first,
                health=spec.env["CLOUDKIT_HEALTH_ADDRESS"],
                metrics=spec.env["CLOUDKIT_METRICS_ADDRESS"],
                plain=True,
            )
            try:
                yield leader_lab
            finally:
                await leader_lab.stop_all()
                for relay in leader_lab.relays:
                    await relay.stop()
                await recorder.stop()
    finally:
        await handle.stop()


def instance_label(name: str) -> str:
    return f"{names.VM_INSTANCE_LABEL}={name}"
