"""Automation service overhead: service jobs next to bare ansible-runner, latency, throughput.

Prints ONE JSON document. Bare and service runs alternate so both see the same machine load;
every figure is a median of the same number of runs of the same one-task playbook.

    .venv/bin/python benchmarks/automation.py [--runs N] [--concurrent N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import ansible_runner

from cloudkit.local.automation import start_automation_service
from cloudkit.local.automation.planning import BASE_JOB_ENV

PLAYBOOK = """\
- name: One task
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: "hello {{ who | default('bench') }}"
"""
SLEEP_PLAYBOOK = """\
- name: One long task
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Sleep (a command, so SIGINT reaches it)
      ansible.builtin.command: sleep 60
      changed_when: false
"""
TERMINAL = {"successful", "failed", "error", "canceled"}
POLL_S = 0.01


def bare_run(base: Path, playbook: Path, index: int) -> float:
    env = {**BASE_JOB_ENV, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    private_data_dir = base / f"bare-{index}"
    private_data_dir.mkdir()
    started = time.perf_counter()
    result = ansible_runner.run(
        private_data_dir=str(private_data_dir), playbook=str(playbook),
        project_dir=str(playbook.parent), inventory="localhost,", extravars={"who": "bare"},
        envvars=env, quiet=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert result.status == "successful", result.status
    return elapsed


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, template: int) -> None:
        self.session, self.url, self.template = session, url, template

    async def launch(self) -> int:
        async with self.session.post(
            f"{self.url}/v2/job_templates/{self.template}/launch/",
            json={"extra_vars": {"who": "service"}},
        ) as response:
            assert response.status == 201, await response.text()
            return int((await response.json())["job"])

    async def job(self, job_id: int) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/v2/jobs/{job_id}/") as response:
            return dict(await response.json())

    async def timed_job(self) -> tuple[float, float, float]:
        """(launch→running seen, launch→terminal seen, server created→started) in seconds."""
        started = time.perf_counter()
        job_id = await self.launch()
        running_at = None
        while True:
            job = await self.job(job_id)
            now = time.perf_counter()
            if running_at is None and job["status"] not in ("new", "pending", "waiting"):
                running_at = now
            if job["status"] in TERMINAL:
                assert job["status"] == "successful" and running_at is not None, job
                server = _seconds(job["created"], job["started"])
                return running_at - started, now - started, server
            await asyncio.sleep(POLL_S)


async def cancel_latency(client: Client, template: int) -> float:
    """Seconds from POST cancel (202) to the job seen canceled, the task being mid-sleep."""
    async with client.session.post(f"{client.url}/v2/job_templates/{template}/launch/") as r:
        assert r.status == 201, await r.text()
        job_id = int((await r.json())["job"])
    while True:  # the sleep task has started once its event is recorded
        async with client.session.get(f"{client.url}/v2/jobs/{job_id}/job_events/") as r:
            events = (await r.json())["results"]
        if any(e.get("event") == "runner_on_start" for e in events):
            break
        await asyncio.sleep(POLL_S)
    started = time.perf_counter()
    async with client.session.post(f"{client.url}/v2/jobs/{job_id}/cancel/") as r:
        assert r.status == 202, await r.text()
    while True:
        job = await client.job(job_id)
        if job["status"] in TERMINAL:
            assert job["status"] == "canceled", job
            return time.perf_counter() - started
        await asyncio.sleep(POLL_S)


def _seconds(start: str, end: str) -> float:
    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


async def throughput(client: Client, count: int) -> float:
    started = time.perf_counter()
    ids = await asyncio.gather(*(client.launch() for _ in range(count)))
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            job = await client.job(job_id)
            if job["status"] in TERMINAL:
                assert job["status"] == "successful", job
                pending.discard(job_id)
        await asyncio.sleep(0.05)
    return count / (time.perf_counter() - started)


async def main(runs: int, concurrent: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="automation-bench-") as scratch:
        base = Path(scratch)
        playbook = base / "project" / "one.yml"
        playbook.parent.mkdir()
        playbook.write_text(PLAYBOOK)
        sleeper = playbook.parent / "sleep.yml"
        sleeper.write_text(SLEEP_PLAYBOOK)
        templates = [
            {"name": "one", "playbook": str(playbook), "inventory": "localhost,"},
            {"name": "sleep", "playbook": str(sleeper), "inventory": "localhost,"},
        ]
        handle = await start_automation_service(base / "state", templates, workers=workers)
        try:
            headers = {"Authorization": f"Bearer {handle.token}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.get(f"{handle.url}/v2/job_templates/?name=one") as response:
                    template = (await response.json())["results"][0]["id"]
                client = Client(session, handle.url, template)
                # Warm caches (imports, bytecode) for both sides before measuring.
                await asyncio.to_thread(bare_run, base, playbook, -1)
                await client.timed_job()
                bare, service, to_running, server_to_running = [], [], [], []
                for index in range(runs):
                    bare.append(await asyncio.to_thread(bare_run, base, playbook, index))
                    running, total, server = await client.timed_job()
                    service.append(total)
                    to_running.append(running)
                    server_to_running.append(server)
                jobs_per_s = await throughput(client, concurrent)
                async with session.get(f"{handle.url}/v2/job_templates/?name=sleep") as response:
                    sleep_template = (await response.json())["results"][0]["id"]
                cancels = [await cancel_latency(client, sleep_template) for _ in range(3)]
        finally:
            await handle.stop()
    bare_s, service_s = statistics.median(bare), statistics.median(service)
    return {
        "benchmark": "automation",
        "runs": runs,
        "playbook": "one debug task on localhost (connection: local)",
        "bare_runner_job_s": round(bare_s, 3),
        "service_job_s": round(service_s, 3),
        "ratio_service_to_bare": round(service_s / bare_s, 3),
        "service_overhead_pct": round((service_s / bare_s - 1) * 100, 1),
        "launch_to_running_p50_s": round(statistics.median(to_running), 4),
        "launch_to_running_server_p50_s": round(statistics.median(server_to_running), 4),
        "throughput_jobs_per_s": round(jobs_per_s, 3),
        "cancel_to_canceled_p50_s": round(statistics.median(cancels), 3),
        "cancel_to_canceled_max_s": round(max(cancels), 3),
        "throughput_concurrent_launches": concurrent,
        "workers": workers,
        "client_poll_interval_s": POLL_S,
        "bare_runner_job_s_all": [round(x, 3) for x in bare],
        "service_job_s_all": [round(x, 3) for x in service],
        "goals": {"overhead_le_10pct": service_s <= bare_s * 1.10,
                  "launch_to_running_p50_le_0_5s": statistics.median(to_running) <= 0.5,
                  "cancel_p50_le_3s": statistics.median(cancels) <= 3.0},
        "cpus": os.cpu_count(),
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.runs, options.concurrent, options.workers)),
                     indent=2))  # fmt: skip
