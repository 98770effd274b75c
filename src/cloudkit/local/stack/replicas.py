"""Operator replicas kept running as a kubelet keeps a pod's container running.

A replica that exits (SIGKILL, a crash, or the exit 1 of a lost Lease) is started again with
the same identity and ports after a back-off, 1 s doubling to 30 s, back to 1 s once a run
lasted a minute (kubelet's CrashLoopBackOff, scaled to a laptop); the other replicas keep
running. Who holds the operators' Lease is followed, so a takeover shows. Every change is
published: DIR/operators.json (what a script or a test reads: pids, restarts, last exit,
leader) and the listeners (the console). Spawning is given in: this module decides when.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from cloudkit.local.private import write_private
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path
from cloudkit.local.stack.procs import Child

log = logging.getLogger("cloudkit.local.stack")

BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 30.0
RESET_AFTER_S = 60.0
"""A run this long ends a crash loop: the next exit waits BACKOFF_FIRST_S again."""
LEASE_POLL_S = 1.0
LEASE_READ_TIMEOUT_S = 5.0
STATUS_FILE = "operators.json"

Spawn = Callable[[str, Mapping[str, str]], Awaitable[Child]]
"""Starts replica `name` with its environment; the supervisor's spawn_operator."""


def restart_delay(exits_in_a_row: int) -> float:
    """The wait before restart number `exits_in_a_row` (1, 2, …) of a crash loop."""
    return min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2.0 ** max(0, exits_in_a_row - 1))


def exits_in_a_row(before: int, ran_for_s: float) -> int:
    """The crash loop's length after an exit: a run of RESET_AFTER_S or more starts a new one."""
    return 1 if ran_for_s >= RESET_AFTER_S else before + 1


def exit_reason(code: int | None, last_line: str | None) -> str:
    """How a process ended, for people: `killed by SIGKILL`, `exited with code 1: <line>`
    (a process that exits says why in its last line; a killed one's last line is chance)."""
    if code is None:
        reason = "still running"
    elif code < 0:
        try:
            reason = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            reason = f"killed by signal {-code}"
    else:
        return f"exited with code {code}: {last_line}" if last_line else f"exited with code {code}"
    return reason


@dataclass(frozen=True)
class ReplicaView:
    """One replica as shown and published."""

    name: str
    pid: int | None
    running: bool
    restarts: int
    last_exit: str | None
    leader: bool


@dataclass(frozen=True)
class OperatorsView:
    lease: str
    leader: str | None
    replicas: tuple[ReplicaView, ...]


@dataclass
class Replica:
    name: str
    env: Mapping[str, str]
    child: Child
    started_at: float
    restarts: int = 0
    exits_in_a_row: int = 0
    last_exit: str | None = None


@dataclass
class OperatorReplicas:
    """Keeps every replica running until `stop()`; `children` is the stack's list of children,
    in which a restarted replica takes its predecessor's place (so the stack stops it)."""

    spawn: Spawn
    children: list[Child]
    admin_kubeconfig: Path
    lease: tuple[str, str]
    status_file: Path
    replicas: dict[str, Replica] = field(default_factory=dict)
    leader: str | None = None
    listeners: list[Callable[[OperatorsView], None]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False

    def add(self, name: str, env: Mapping[str, str], child: Child) -> None:
        loop = asyncio.get_running_loop()
        self.replicas[name] = Replica(name, env, child, loop.time())

    def owns(self, child: Child) -> bool:
        return any(replica.child is child for replica in self.replicas.values())

    def start(self, leader: str | None) -> None:
        """Supervise every replica and follow the Lease from now on."""
        self.leader = leader
        for replica in self.replicas.values():
            self._tasks.append(asyncio.create_task(self._keep(replica), name=replica.name))
        self._tasks.append(asyncio.create_task(self._follow_lease(), name="lease-follower"))
        self.publish()

    async def stop(self) -> None:
        """No more restarts; the replicas themselves are stopped with the stack's children."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def view(self) -> OperatorsView:
        return OperatorsView(
            lease="/".join(self.lease),
            leader=self.leader,
            replicas=tuple(
                ReplicaView(
                    name=r.name,
                    pid=r.child.pid,
                    running=r.child.process.returncode is None,
                    restarts=r.restarts,
                    last_exit=r.last_exit,
                    leader=r.name == self.leader,
                )
                for r in self.replicas.values()
            ),
        )

    def publish(self) -> None:
        view = self.view()
        tmp = self.status_file.with_suffix(".tmp")
        write_private(tmp, json.dumps(asdict(view), indent=2) + "\n")
        tmp.replace(self.status_file)
        for listener in self.listeners:
            listener(view)

    async def _keep(self, replica: Replica) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            code = await replica.child.process.wait()
            if self._stopping or replica.child.stopping:
                return
            ran_for = loop.time() - replica.started_at
            replica.exits_in_a_row = exits_in_a_row(replica.exits_in_a_row, ran_for)
            last_line = next((line for line in reversed(replica.child.tail) if line.strip()), None)
            replica.last_exit = exit_reason(code, last_line)
            delay = restart_delay(replica.exits_in_a_row)
            log.warning(
                "%s %s; starting it again in %gs (same identity)",
                replica.name,
                replica.last_exit,
                delay,
            )
            self.publish()
            await replica.child.stop()  # reaped already: closes its log, ends its group
            await asyncio.sleep(delay)
            await self._restart(replica)

    async def _restart(self, replica: Replica) -> None:
        # Shielded: a stop during the spawn must still find the new process to stop it.
        spawning = asyncio.ensure_future(self.spawn(replica.name, replica.env))
        try:
            child = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            await (await spawning).stop()
            raise
        child.collecting = False  # nobody waits for its lines: do not queue them
        old = replica.child
        self.children[self.children.index(old)] = child
        replica.child = child
        replica.started_at = asyncio.get_running_loop().time()
        replica.restarts += 1
        log.info("%s started again (pid %d, restart %d)", replica.name, child.pid, replica.restarts)
        self.publish()

    async def _follow_lease(self) -> None:
        """Polls the Lease's holder (a timeout per read: a hung API server must not stop it)."""
        path = resource_path(
            "coordination.k8s.io", "v1", "leases", namespace=self.lease[0], name=self.lease[1]
        )
        async with KubeClient.from_kubeconfig(self.admin_kubeconfig) as kube:
            while not self._stopping:
                await asyncio.sleep(LEASE_POLL_S)
                try:
                    found = await kube.request("GET", path, timeout_s=LEASE_READ_TIMEOUT_S)
                except (KubeError, aiohttp.ClientError, OSError, TimeoutError):
                    continue  # no answer: the holder is unknown, not changed
                holder = str((found.get("spec") or {}).get("holderIdentity") or "") or None
                if holder != self.leader:
                    log.info(
                        "operators' Lease: %s leads now (was %s)",
                        holder or "nobody",
                        self.leader or "nobody",
                    )
                    self.leader = holder
                    self.publish()
