"""The automation job's own floor: the shipped playbooks run three ways, side by side.

Prints ONE JSON document. One local stack (AAP direct: API server, VM simulator, automation
service, operator); each round runs, at parallel 1 and then 3, `parallel` provision and then
deprovision jobs (a) by bare `ansible-playbook`, (b) through the automation service alone
(launched over its AWX API, no operator), (c) inside full lifecycles (operator and stack,
timed as `cloudkit bench latency` times them). (a) and (b) use instances in a namespace the
operator does not watch, shaped as the operator sends them (its finalizer, a tenant namespace
apart from the instance's). Bare runs carry the job_profile callback (benchmarks/job_profile):
each task's module, wall and CPU seconds of ansible-playbook's whole process tree.

    .venv/bin/python benchmarks/jobs.py [--rounds N] [--vm-boot-seconds S]

Figures per parallelism (`p1`, `p3`), means over rounds and parallel jobs: `provision_job_s`,
`deprovision_job_s` (inside lifecycles), `bare_provision_s`, `bare_deprovision_s`,
`service_provision_s`, `service_deprovision_s`, the CPU seconds and module processes
(`bare_<phase>_module_runs`) of a bare job, and `vm_boot_s`
(the simulator's boot delay; its stop delay is the same). The machine's load average is part
of the output: compare runs by ratios taken in the same hour.
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
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest
from cloudkit.bench.lifecycle import InstanceWatch, LifecycleSpec, run_lifecycle
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.supervisor import INSTANCE_NAMESPACE

PLAYBOOKS = Path(str(resources.files("cloudkit.local") / "playbooks"))
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PROFILE_PLUGIN_DIR = Path(__file__).resolve().parent / "job_profile"
BENCH_NS = "jobs-bench"
"""Instances of runs (a) and (b): a namespace the operator does not reconcile."""
TENANT_NS = "jobs-bench-tenant"
TERMINAL = {"successful", "failed", "error", "canceled"}
SERVICE_POLL_S = 0.1
JOB_TIMEOUT_S = 300.0
LEVELS = (1, 3)
PHASES = ("provision", "deprovision")


def ci_path(name: str | None = None) -> str:
    return resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=BENCH_NS, name=name)


def instance(name: str) -> dict[str, Any]:
    """A ComputeInstance as the operator has it when it launches provisioning."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": name,
            "namespace": BENCH_NS,
            "labels": {names.INSTANCE_UUID_LABEL: f"uuid-{name}"},
            "finalizers": [names.OPERATOR_FINALIZER],
        },
        "spec": {"templateID": "bench_vm", "cores": 1, "memoryGiB": 1},
    }


def payload_status(name: str) -> dict[str, Any]:
    return {
        "desiredConfigVersion": f"v-{name}",
        "tenantReference": {"name": "bench", "namespace": TENANT_NS},
    }


def launch_vars(payload: dict[str, Any]) -> dict[str, Any]:
    return {"ansible_eda": {"event": {"payload": payload}}}


def write_extra_vars(path: Path, payload: dict[str, Any]) -> Path:
    os.makedirs(path.parent, exist_ok=True)
    path.write_text(json.dumps(launch_vars(payload)))
    return path


# -- (a) and (b): one job on an instance of BENCH_NS --------------------------------------------

JobRunner = Callable[[str, dict[str, Any], Path], Awaitable[float]]
"""Runs `playbook` (provision or deprovision) on a payload; returns its seconds or raises."""


async def bare_job(stack: StackHandle, phase: str, payload: dict[str, Any], scratch: Path) -> float:
    extra_vars = write_extra_vars(scratch / f"{phase}.json", payload)
    env = {
        **os.environ,
        "K8S_AUTH_KUBECONFIG": str(stack.state_dir / "apiserver" / "kubeconfig"),
        "ANSIBLE_LOCAL_TEMP": str(scratch / "ansible-tmp"),
        "ANSIBLE_HOME": str(scratch / "ansible-home"),
        "ANSIBLE_CALLBACK_PLUGINS": str(PROFILE_PLUGIN_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "job_profile",
        "JOB_PROFILE_OUT": str(scratch / f"{phase}.profile.jsonl"),
    }
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(PLAYBOOKS / f"{phase}.yml"),
        "-e", f"@{extra_vars}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), JOB_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"bare {phase} failed:\n{output.decode()[-3000:]}")
    return elapsed


class Service:
    """The stack's automation service, reached over its AWX API like any client."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def job(self, phase: str, payload: dict[str, Any], scratch: Path) -> float:
        template = f"cloudkit-{phase}-compute-instance"
        started = time.perf_counter()
        async with self.session.post(
            f"{self.url}/v2/job_templates/{template}/launch/",
            json={"extra_vars": launch_vars(payload)},
        ) as response:
            assert response.status == 201, await response.text()
            job_id = int((await response.json())["job"])
        deadline = started + JOB_TIMEOUT_S
        while time.perf_counter() < deadline:
            async with self.session.get(f"{self.url}/v2/jobs/{job_id}/") as response:
                job = await response.json()
            if job["status"] in TERMINAL:
                if job["status"] != "successful":
                    raise RuntimeError(f"service {phase} job {job_id}: {job['job_explanation']}")
                return time.perf_counter() - started
            await asyncio.sleep(SERVICE_POLL_S)
        raise TimeoutError(f"service {phase} job {job_id} not finished in {JOB_TIMEOUT_S} s")


async def jobs_outside_lifecycles(
    kube: KubeClient, run: JobRunner, parallel: int, tag: str, scratch: Path
) -> dict[str, list[float]]:
    """`parallel` provisions at once, then their deprovisions at once; seconds per phase."""
    names_ = [f"{tag}-{i}" for i in range(parallel)]
    created = [await kube.create(ci_path(), instance(name)) for name in names_]
    provisions = await asyncio.gather(
        *(
            run("provision", {**body, "status": payload_status(name)}, scratch / name)
            for name, body in zip(names_, created, strict=True)
        )
    )
    deleting = []
    for name in names_:
        await kube.delete(ci_path(name))
        live = await kube.get(ci_path(name))
        assert live is not None, name
        deleting.append({**live, "status": payload_status(name)})
    deprovisions = await asyncio.gather(
        *(run("deprovision", body, scratch / f"{body['metadata']['name']}-d") for body in deleting)
    )
    for name in names_:  # the operator's finalizer, which no operator removes here
        live = await kube.get(ci_path(name))
        # The operator may have released it: the service's job notifications name the
        # instance, and a pass over a deleted instance without the automation finalizer ends.
        if live is not None:
            assert names.AUTOMATION_FINALIZER not in live["metadata"].get("finalizers", []), live
            await kube.json_patch(ci_path(name), [{"op": "remove", "path": "/metadata/finalizers"}])
    return {"provision": list(provisions), "deprovision": list(deprovisions)}


# -- (c): full lifecycles ------------------------------------------------------------------------


def lifecycles(kubeconfig: Path, parallel: int, tag: str) -> dict[str, list[float]]:
    """`parallel` lifecycles at once through the operator; each job's seconds as the latency
    experiment measures them (launch recorded on the instance → the playbook's last mark)."""
    api = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    custom = kube_client.CustomObjectsApi(api)
    watcher = InstanceWatch(custom, INSTANCE_NAMESPACE)
    watcher.start()
    try:
        specs = [
            LifecycleSpec("aap", 1, f"{tag}-{i}", "local", JOB_TIMEOUT_S) for i in range(parallel)
        ]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            rows = list(pool.map(lambda spec: run_lifecycle(custom, watcher, spec), specs))
    finally:
        watcher.stop()
    failed = [row.error for row in rows if not row.ok]
    if failed:
        raise RuntimeError(f"lifecycles failed: {failed}")
    return {
        "provision": [row.provision_job_s or 0.0 for row in rows],
        "deprovision": [row.deprovision_job_s or 0.0 for row in rows],
        "cycle": [row.total_s or 0.0 for row in rows],
    }


# -- the profile ---------------------------------------------------------------------------------


def read_profiles(scratch: Path) -> dict[str, list[list[dict[str, Any]]]]:
    """Every bare run's profile lines, by phase."""
    runs: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for path in sorted(scratch.rglob("*.profile.jsonl")):
        phase = path.name.split(".", 1)[0]
        runs[phase].append([json.loads(line) for line in path.read_text().splitlines()])
    return runs


def summarize_profile(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean wall and CPU seconds per task (in playbook order) over the runs, and the total."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for lines in runs:
        for line in lines:
            by_task.setdefault(line["task"], []).append(line)
    summary = []
    for task, lines in by_task.items():
        ran = [line for line in lines if line.get("status", "ok") != "skipped"]
        summary.append(
            {
                "task": task,
                "module": lines[0].get("module", ""),
                "ran": f"{len(ran)}/{len(runs)}",
                "wall_s": round(statistics.fmean(line["wall_s"] for line in lines), 3),
                "cpu_s": round(statistics.fmean(line["cpu_s"] for line in lines), 3),
                "module_runs": round(statistics.fmean(line["module_runs"] for line in lines), 2),
            }
        )
    return summary


# -- the run -------------------------------------------------------------------------------------


def progress(message: str) -> None:
    """A line on stderr per step: a long run under load shows where it is."""
    print(f"{time.strftime('%H:%M:%S')} {message} (load {os.getloadavg()[0]:.1f})", file=sys.stderr)


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


async def prepare(kube: KubeClient) -> None:
    crds = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await kube.ensure(crds, crd_manifest())
    namespaces = resource_path("", "v1", "namespaces")
    await kube.ensure(
        namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NS}}
    )


async def measure(stack: StackHandle, rounds: int, scratch: Path) -> dict[str, Any]:
    figures: dict[int, dict[str, list[float]]] = {n: defaultdict(list) for n in LEVELS}
    headers = {"Authorization": f"Bearer {stack.automation_token}"}
    async with (
        KubeClient.from_kubeconfig(stack.state_dir / "apiserver" / "kubeconfig") as kube,
        aiohttp.ClientSession(headers=headers) as session,
    ):
        await prepare(kube)
        service = Service(session, stack.automation_url)

        async def bare(phase: str, payload: dict[str, Any], where: Path) -> float:
            return await bare_job(stack, phase, payload, where)

        # Warm-up (bytecode, the collection's discovery cache), not measured.
        await jobs_outside_lifecycles(kube, bare, 1, "warm-bare", scratch / "warm")
        for round_ in range(1, rounds + 1):
            for parallel in LEVELS:
                tag = f"r{round_}p{parallel}"
                seen = figures[parallel]
                progress(f"round {round_}, parallel {parallel}: bare")
                for phase, seconds in (
                    await jobs_outside_lifecycles(
                        kube, bare, parallel, f"bare-{tag}", scratch / f"p{parallel}"
                    )
                ).items():
                    seen[f"bare_{phase}_s"] += seconds
                progress(f"round {round_}, parallel {parallel}: service")
                for phase, seconds in (
                    await jobs_outside_lifecycles(
                        kube, service.job, parallel, f"svc-{tag}", scratch / "service"
                    )
                ).items():
                    seen[f"service_{phase}_s"] += seconds
                progress(f"round {round_}, parallel {parallel}: lifecycles")
                for phase, seconds in (
                    await asyncio.to_thread(lifecycles, stack.kubeconfig, parallel, f"lc-{tag}")
                ).items():
                    seen[f"{phase}_job_s" if phase != "cycle" else "cycle_s"] += seconds
    result: dict[str, Any] = {}
    profiles = {level: read_profiles(scratch / f"p{level}") for level in LEVELS}
    boot = stack.vm_boot_seconds
    for level in LEVELS:
        seen = figures[level]
        level_figures: dict[str, Any] = {key: mean(values) for key, values in seen.items()}
        level_figures["vm_boot_s"] = boot
        for phase in PHASES:
            totals = [lines[-1]["cpu_s"] for lines in profiles[level][phase]]
            level_figures[f"bare_{phase}_cpu_s"] = mean(totals)
            modules = [float(lines[-1]["module_runs"]) for lines in profiles[level][phase]]
            level_figures[f"bare_{phase}_module_runs"] = mean(modules)
        margin = 3.0 if level == 1 else 6.0
        level_figures["goals"] = {
            f"{phase}_job_le_boot_plus_{margin:g}s": (level_figures[f"{phase}_job_s"] or 1e9)
            <= boot + margin
            for phase in PHASES
        }
        result[f"p{level}"] = level_figures
    result["profile_p1"] = {phase: summarize_profile(profiles[1][phase]) for phase in PHASES}
    result["profile_p3"] = {phase: summarize_profile(profiles[3][phase]) for phase in PHASES}
    return result


async def main(rounds: int, boot: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="ck-jobs-") as tmp:
        stack = await start_stack(
            provider="aap", state_dir=Path(tmp) / "stack", vm_boot_seconds=boot,
            with_fulfillment=False,
        )  # fmt: skip
        try:
            figures = await measure(stack, rounds, Path(tmp) / "runs")
        finally:
            await stack.stop()
    return {
        "benchmark": "jobs",
        "rounds": rounds,
        "started_utc": started,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        **figures,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--vm-boot-seconds", type=float, default=5.0)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.rounds, options.vm_boot_seconds)), indent=2))
