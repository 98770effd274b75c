"""Running simulated jobs: AWX's states on configured durations, cancel, and their effects.

A simulated job goes pending → waiting → running → successful/failed/canceled like any job of
the service (the executor's transitions write the store and send the template's notification),
but no process starts: `simulated_effects` writes what the playbook would have written, through
the Kubernetes API, with the credentials the playbooks get (K8S_AUTH_KUBECONFIG). A simulated job
takes no worker: it costs a coroutine, not a CPU, so a burst of a thousand launches measures the
caller rather than the pool. Cancel is honoured in every state, as for real jobs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from cloudkit.local.automation import simulated_effects
from cloudkit.local.automation.planning import Outcome
from cloudkit.local.automation.simulation import (
    STDOUT_MARK,
    SimulationError,
    SimulationSpec,
    run_seconds_of,
)
from cloudkit.local.automation.store import Store, utcnow
from cloudkit.local.stack.kube import KubeClient

KUBECONFIG_ENV = "K8S_AUTH_KUBECONFIG"
Effect = Callable[..., Awaitable[None]]
EFFECTS: dict[str, Effect] = {
    "provision": simulated_effects.provision,
    "deprovision": simulated_effects.deprovision,
}


Transition = Callable[..., None]
"""The executor's `_transition(job_id, status, **fields)`: store write plus notification."""
Finish = Callable[[int, Outcome], None]


async def run_effects(
    effects: str,
    extra_vars: Mapping[str, Any],
    kube: KubeClient,
    *,
    poll_s: float = 1.0,
    pause: Callable[[], Awaitable[None]] | None = None,
) -> Outcome:
    """The playbook's effects for these launch variables; the outcome a real run would end in."""
    effect = EFFECTS.get(effects)
    if effect is None:
        if pause is not None:
            await pause()
        return Outcome("successful")
    try:
        payload = simulated_effects.payload_of(extra_vars)
        await effect(kube, payload, poll_s=poll_s, pause=pause or _no_pause)
    except simulated_effects.TaskFailed as failure:
        return Outcome("failed", str(failure), failure.message)
    return Outcome("successful")


async def _no_pause() -> None:
    return None


class SimulatedJobs:
    """The simulated jobs in flight: one task each, cancelled on request or at stop."""

    def __init__(self, store: Store, *, transition: Transition, finish: Finish) -> None:
        self._store = store
        self._transition = transition
        self._finish = finish
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._clients: dict[Path, KubeClient] = {}

    def start(self, job_id: int, spec: SimulationSpec, extra_vars: dict[str, Any]) -> None:
        task = asyncio.create_task(self._run(job_id, spec, extra_vars))
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    def cancel(self, job_id: int) -> bool:
        """True when the job is one of ours (its task then ends it as canceled)."""
        task = self._tasks.get(job_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _run(self, job_id: int, spec: SimulationSpec, extra_vars: dict[str, Any]) -> None:
        running = False
        try:
            await asyncio.sleep(spec.pending_seconds)
            self._transition(job_id, "waiting")
            await asyncio.sleep(spec.waiting_seconds)
            self._transition(job_id, "running", started=utcnow())
            running = True
            self._output(job_id, 1, f"{STDOUT_MARK} (effects: {spec.effects})")
            outcome = await self._running(spec, extra_vars)
        except asyncio.CancelledError:
            # Cancel (or the service stopping) ends the job as AWX ends a canceled one.
            explanation = "Job was canceled" if running else "Job was canceled before it ran"
            outcome = Outcome("canceled", explanation)
        except Exception as error:  # a bug here must still end the job
            outcome = Outcome("error", "Job terminated due to error", repr(error))
        if outcome.job_explanation and outcome.status != "canceled":
            self._output(job_id, 2, outcome.job_explanation)
        self._finish(job_id, outcome)

    def _output(self, job_id: int, line: int, text: str) -> None:
        """One line of the job's stdout, stored as a job event (AWX's `verbose` kind)."""
        event = {"counter": line, "event": "verbose", "stdout": text}
        self._store.add_events(job_id, [{**event, "start_line": line - 1, "end_line": line}])

    async def _running(self, spec: SimulationSpec, extra_vars: dict[str, Any]) -> Outcome:
        began = time.monotonic()
        try:
            run_seconds = run_seconds_of(spec, extra_vars)
        except SimulationError as error:
            return Outcome("failed", str(error), str(error))

        async def rest_of_run() -> None:
            await asyncio.sleep(max(0.0, run_seconds - (time.monotonic() - began)))

        if spec.outcome == "failed":
            # A simulated failure writes nothing: the run fails before its first effect.
            await rest_of_run()
            return Outcome("failed", "Simulated job failed (outcome: failed)")
        if spec.effects not in EFFECTS:
            await rest_of_run()
            return Outcome("successful")
        try:
            kube = await self._kube()
        except simulated_effects.TaskFailed as failure:
            return Outcome("failed", str(failure), failure.message)
        return await run_effects(
            spec.effects, extra_vars, kube, poll_s=spec.poll_seconds, pause=rest_of_run
        )

    async def _kube(self) -> KubeClient:
        """One client per kubeconfig, shared by every simulated job (one connection pool)."""
        path = Path(os.environ.get(KUBECONFIG_ENV) or "")
        if not path.name:
            raise simulated_effects.TaskFailed(
                "Connect to Kubernetes", f"{KUBECONFIG_ENV} is unset"
            )
        client = self._clients.get(path)
        if client is None:
            client = KubeClient.from_kubeconfig(path)
            await client.__aenter__()
            self._clients[path] = client
        return client
