"""Job execution: a bounded worker pool, status transitions, events, workflows, cancel.

Jobs move new → pending → waiting → running → successful/failed/error/canceled. Every
transition goes through `_transition`, which writes the store and, when the job starts running or
ends, queues the template's notification (AWX's `started`, `success` and `error` notifications:
no webhook for new, pending or waiting), so the stored status and the webhook never disagree.
Playbooks run through ansible-runner's prepared command (RunnerConfig: env, callback plugin,
artifacts), spawned by `process.PlaybookProcess`; ansible-runner's event filter turns the output
into job events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ansible_runner.config.runner import RunnerConfig
from ansible_runner.runner import Runner
from ansible_runner.utils import OutputEventFilter

from cloudkit.local.automation import extravars, planning
from cloudkit.local.automation.notify import Notifier
from cloudkit.local.automation.planning import JOB_TEMPLATE, TemplateSpec
from cloudkit.local.automation.process import PlaybookProcess
from cloudkit.local.automation.simulated_jobs import SimulatedJobs
from cloudkit.local.automation.store import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Store,
    Template,
    utcnow,
)
from cloudkit.local.private import private_dir

log = logging.getLogger(__name__)

NOTIFIED_STATUSES = ("running", *TERMINAL_STATUSES)
"""The transitions a webhook hears of: AWX attaches notification templates to a job template
for `started` (the job runs) and `success` / `error` (any end, a cancel included); each
notification is a request the receiver pays for, so none for the queued states."""

RESTART_EXPLANATION = (
    "Task was marked as running but was not present in the job queue after restart, "
    "so it has been marked as failed."
)


# Playbooks run below the service's own priority. AWX runs jobs on execution nodes apart from
# its API; on one machine, a lower CPU priority keeps the API (and whatever else the stack
# runs: the API server, the operator) responsive while every core runs playbooks.
JOB_NICENESS = 10


class Executor:
    def __init__(
        self,
        store: Store,
        *,
        state_dir: Path,
        workers: int,
        notifier: Notifier,
        niceness: int = JOB_NICENESS,
    ):
        self._store = store
        self._niceness = niceness
        self._jobs_dir = state_dir / "jobs"
        self._worker_count = max(1, workers)
        self._notifier = notifier
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._processes: dict[int, PlaybookProcess] = {}
        self._finished: dict[int, asyncio.Event] = {}
        self._workflows: dict[int, asyncio.Task[None]] = {}
        self._bin_dir = os.path.dirname(sys.executable)
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Jobs of `kind: simulated` templates run here instead of in the worker pool.
        self._simulated = SimulatedJobs(store, transition=self._transition, finish=self._finish)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Reap jobs a previous run left active, requeue ones it never started, start workers."""
        requeue = []
        for job in self._store.jobs_with_status(ACTIVE_STATUSES):
            # A queued plain job lost nothing but its place in the queue (AWX keeps pending
            # jobs across restarts); anything already started, or owned by a workflow whose
            # coordinator is gone, cannot be resumed.
            if job["status"] == "pending" and job["type"] == "job" and not job["workflow_job_id"]:
                requeue.append(job)
                continue
            self._transition(
                job["id"], "error", finished=utcnow(), job_explanation=RESTART_EXPLANATION
            )
        shutil.rmtree(self._jobs_dir, ignore_errors=True)
        private_dir(self._jobs_dir)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._worker_count)]
        for job in requeue:
            self._enqueue(job)

    async def stop(self) -> None:
        """Cancel what runs and wait until it is reaped and recorded; queued jobs stay pending.

        Workers are not cancelled mid-job: one could be between spawning a process and
        registering it, and would leave that process behind. They see `_stopping` instead.
        """
        self._stopping = True
        for task in self._workflows.values():
            task.cancel()
        for job_id in list(self._processes):
            await self.cancel(job_id)
        await self._simulated.stop()
        await asyncio.gather(*self._workflows.values(), return_exceptions=True)
        for _ in self._workers:
            self._queue.put_nowait(0)  # wakes idle workers so they can see _stopping
        if self._workers:
            _, stuck = await asyncio.wait(self._workers, timeout=10.0)
            for worker in stuck:
                worker.cancel()
        await asyncio.gather(*self._workers, *self._background, return_exceptions=True)

    # -- launch and cancel ---------------------------------------------------------------------

    def launch(self, template: Template, extra_vars: dict[str, Any]) -> dict[str, Any]:
        """Create a job (or workflow job) in `pending` and queue it; returns the row."""
        if template.kind == JOB_TEMPLATE:
            job = self._store.create_job(
                type="job", name=template.name, template_id=template.id, extra_vars=extra_vars
            )
            self._enqueue(job)
        else:
            job = self._store.create_job(
                type="workflow_job",
                name=template.name,
                template_id=template.id,
                extra_vars=extra_vars,
            )
            self._finished[job["id"]] = asyncio.Event()
            self._notify(job)
            self._workflows[job["id"]] = asyncio.create_task(self._run_workflow(job["id"]))
        return job

    async def cancel(self, job_id: int) -> bool:
        """Request a cancel; False when the job is not active (the API's 405)."""
        job = self._store.job(job_id)
        if job is None or job["status"] not in ACTIVE_STATUSES:
            return False
        self._store.update_job(job_id, cancel_flag=1, canceled_on=job["canceled_on"] or utcnow())
        if job["type"] == "workflow_job":
            for child in self._store.workflow_children(job_id):
                if child["status"] in ACTIVE_STATUSES:
                    await self.cancel(child["id"])
            return True
        if self._simulated.cancel(job_id):
            return True
        process = self._processes.get(job_id)
        if process is not None:
            # The API answers 202 before the run has stopped, as AWX does.
            self._in_background(process.cancel())
        elif job["status"] in ("new", "pending"):
            self._finish(job_id, planning.Outcome("canceled", "Job was canceled before it ran"))
        # A job in `waiting` sees cancel_flag right after its process starts.
        return True

    async def wait_finished(self, job_id: int) -> None:
        event = self._finished.get(job_id)
        if event is not None:
            await event.wait()

    # -- jobs ----------------------------------------------------------------------------------

    def _enqueue(self, job: dict[str, Any]) -> None:
        self._finished[job["id"]] = asyncio.Event()
        template = self._store.template(JOB_TEMPLATE, job["template_id"])
        simulate = TemplateSpec.from_json(template.spec).simulate if template else None
        if simulate is not None:
            self._simulated.start(job["id"], simulate, json.loads(job["extra_vars"]))
        else:
            self._queue.put_nowait(job["id"])

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            if self._stopping:
                return
            job = self._store.job(job_id)
            if job is None or job["status"] != "pending":
                continue  # canceled or deleted while queued
            try:
                await self._run_job(job)
            except Exception:
                log.exception("job %s crashed", job_id)
                self._finish(
                    job_id,
                    planning.Outcome(
                        "error", "Job terminated due to error", traceback.format_exc()
                    ),
                )

    async def _run_job(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        self._transition(job_id, "waiting")
        template = self._store.template(JOB_TEMPLATE, job["template_id"])
        if template is None:
            self._finish(job_id, planning.Outcome("error", "Job template no longer exists"))
            return
        spec = TemplateSpec.from_json(template.spec)
        private_data_dir = self._jobs_dir / str(job_id)
        kwargs = planning.runner_config_kwargs(
            spec,
            private_data_dir=private_data_dir,
            ident=str(job_id),
            bin_dir=self._bin_dir,
            path_env=os.environ.get("PATH", ""),
        )
        variables = extravars.document(json.loads(job["extra_vars"]), spec.extra_vars)
        try:
            _write_private(private_data_dir / extravars.EXTRAVARS_FILE, variables)
            process, output = await self._spawn(job_id, kwargs)
        except Exception:
            self._finish(
                job_id,
                planning.Outcome("error", "Job terminated due to error", traceback.format_exc()),
            )
            await self._cleanup(private_data_dir)
            return
        self._processes[job_id] = process
        try:
            self._transition(job_id, "running", started=utcnow())
            if self._stopping or (self._store.job(job_id) or {}).get("cancel_flag"):
                self._in_background(process.cancel())
            returncode = await process.wait(limit_s=spec.timeout or None)
            output.close()
        finally:
            del self._processes[job_id]
        outcome = planning.job_outcome(
            returncode=returncode,
            cancel_requested=process.cancel_requested,
            timed_out=process.timed_out,
            failed_task=self._store.failed_task_message(job_id),
        )
        self._finish(job_id, outcome)
        await self._cleanup(private_data_dir)

    async def _spawn(
        self, job_id: int, kwargs: dict[str, Any]
    ) -> tuple[PlaybookProcess, OutputEventFilter]:
        config = RunnerConfig(**kwargs)
        config.prepare()
        events: list[dict[str, Any]] = []

        def keep_event(event: dict[str, Any]) -> bool:
            events.append(event)
            return False  # the store keeps events; no per-event JSON files

        runner = Runner(config, event_handler=keep_event)
        os.makedirs(os.path.join(config.artifact_dir, "job_events"), exist_ok=True)
        output = OutputEventFilter(None, runner.event_callback, suppress_ansible_output=True)

        def on_output(text: str) -> None:
            output.write(text)
            self._store_events(job_id, events)

        original_close = output.close

        def close() -> None:
            original_close()
            self._store_events(job_id, events)

        output.close = close
        process = await PlaybookProcess.spawn(
            config.command,
            cwd=str(config.cwd),
            env=config.env,
            on_output=on_output,
            niceness=self._niceness,
        )
        return process, output

    def _store_events(self, job_id: int, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        self._store.add_events(job_id, events)
        for event in events:
            artifacts = (event.get("event_data") or {}).get("artifact_data")
            if event.get("event") == "playbook_on_stats" and artifacts:
                self._store.update_job(job_id, artifacts=json.dumps(artifacts))
        events.clear()

    async def _cleanup(self, private_data_dir: Path) -> None:
        await asyncio.to_thread(shutil.rmtree, private_data_dir, True)

    # -- workflows -----------------------------------------------------------------------------

    async def _run_workflow(self, workflow_job_id: int) -> None:
        try:
            await self._run_workflow_nodes(workflow_job_id)
        except asyncio.CancelledError:
            self._finish(workflow_job_id, planning.Outcome("canceled", "Service stopped"))
            raise
        finally:
            self._workflows.pop(workflow_job_id, None)

    async def _run_workflow_nodes(self, workflow_job_id: int) -> None:
        workflow = self._store.job(workflow_job_id)
        assert workflow is not None
        template = self._store.template(planning.WORKFLOW_TEMPLATE, workflow["template_id"])
        spec = TemplateSpec.from_json(template.spec) if template else None
        self._transition(workflow_job_id, "waiting")
        self._transition(workflow_job_id, "running", started=utcnow())
        statuses: list[str] = []
        workflow_vars = json.loads(workflow["extra_vars"])
        for node_name in spec.nodes if spec else ():
            if (self._store.job(workflow_job_id) or {}).get("cancel_flag"):
                break
            node = self._store.template_by_name(JOB_TEMPLATE, node_name)
            if node is None:
                statuses.append("error")
                break
            node_vars = planning.node_extra_vars(TemplateSpec.from_json(node.spec), workflow_vars)
            child = self._store.create_job(
                type="job",
                name=node.name,
                template_id=node.id,
                extra_vars=node_vars,
                workflow_job_id=workflow_job_id,
            )
            self._enqueue(child)
            await self.wait_finished(child["id"])
            statuses.append((self._store.job(child["id"]) or {}).get("status", "error"))
            if statuses[-1] != "successful":
                break
        cancel_flag = bool((self._store.job(workflow_job_id) or {}).get("cancel_flag"))
        self._finish(workflow_job_id, planning.workflow_outcome(statuses, cancel_flag))

    # -- transitions ---------------------------------------------------------------------------

    def _finish(self, job_id: int, outcome: planning.Outcome) -> None:
        self._transition(
            job_id,
            outcome.status,
            finished=utcnow(),
            job_explanation=outcome.job_explanation,
            result_traceback=outcome.result_traceback,
            event_processing_finished=1,
        )
        event = self._finished.pop(job_id, None)
        if event is not None:
            event.set()

    def _transition(self, job_id: int, status: str, **fields: Any) -> None:
        job = self._store.update_job(job_id, status=status, **fields)
        if job is not None:
            self._notify(job)

    def _notify(self, job: dict[str, Any]) -> None:
        if job["status"] not in NOTIFIED_STATUSES:
            return
        kind = JOB_TEMPLATE if job["type"] == "job" else planning.WORKFLOW_TEMPLATE
        template = self._store.template(kind, job["template_id"])
        target = TemplateSpec.from_json(template.spec).notification if template else None
        if target is None:
            return
        collection = "jobs" if job["type"] == "job" else "workflow_jobs"
        self._notifier.notify(
            target,
            {
                "id": job["id"],
                "type": job["type"],
                "status": job["status"],
                "name": job["name"],
                "url": f"/api/v2/{collection}/{job['id']}/",
                "extra_vars": job["extra_vars"],
                "job_explanation": job["job_explanation"],
            },
        )


def _write_private(path: Path, text: str) -> None:
    """A file only the service's user can read: job variables may carry secrets."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
