"""Operator overhead over whole lifecycles, our adaptive polling vs upstream's, side by side.

Both policies run at once on one local stack (AAP direct), each with its own operator and
namespace: the stack's operator with our policy (`adaptive`, AWX job notifications on), and a
second operator started here with upstream's (`CLOUDKIT_POLL_POLICY=fixed`, reference §3.1:
every pass polls the running job, each of the operator's own writes causes one more pass at
once, a 30 s requeue that event-woken passes do not postpone, a VM change wakes at once; no job
notifications). Same API server, automation service, VM stand-in and moment, so both halves
of a round carry the same load. A round of size N creates N instances per policy, alternately
(A B A B …; the first policy alternates by round), waits until all 2N are Ready and the
automation reports every provision job finished (under upstream's policy Ready comes at the
playbook's last write, and a delete before the job ends would cancel it), deletes them alike
and waits until all are gone. Per instance:

  cycle    = (Ready − created) + (gone − delete requested)
  backend  = provision job + deprovision job (created → finished), as the automation service
             reports them, queueing included
  overhead = cycle − backend: the time the operator added on top of the automation itself

A lifecycle whose instance went Failed, missed a deadline, or whose job was not found or did
not succeed is failed: named on stderr and in the JSON (`failed`, `failed_lifecycles`) and
kept out of every figure. Per round: upstream's mean overhead ÷ ours; per N its min / median /
max over rounds. Also Kubernetes API requests per lifecycle (each operator's metrics), operator
CPU seconds during the round and peak RSS (from /proc). Prints one JSON document:

  overhead_ratio                        our worst mean overhead / mean cycle over rounds and N
  overhead_improvement_vs_fixed_poll    the worst N's median ratio (upstream ÷ ours)
  overhead_improvement_by_n             per N: {min, median, max} of the per-round ratios
  overhead_difference_s_by_n            per N: the same of upstream's mean overhead − ours
  failed                                failed lifecycles, both policies, all rounds
  rounds                                per N and round: both policies' figures

    .venv/bin/python benchmarks/lifecycle.py [--sizes 1,10,50] [--rounds 3]
        [--vm-boot-seconds 3] [--budget-minutes M]

--budget-minutes: a round starts only if it is predicted to end within that much wall time
from the start (predicted from the rounds measured so far, scaled by N; rounds run in plan
order, sizes as given), so a long run ends with the rounds that fitted, stated in `rounds_run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.bench import baseline
from cloudkit.bench.baseline import OURS, UPSTREAM, Lifecycle, Round, Stamps
from cloudkit.bench.lifecycle import InstanceWatch, Marks
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack import environment as stack_environment
from cloudkit.local.stack.children import operator_healthy, prepare_cluster, spawn_operator
from cloudkit.local.stack.ports import free_port
from cloudkit.local.stack.procs import Child

log = logging.getLogger("benchmarks.lifecycle")

UPSTREAM_NAMESPACE = "cloudkit-upstream-policy"
UPSTREAM_LEASE = "cloudkit-upstream-policy-leader"
STACK_START_S = 120.0
"""Room the budget keeps for starting a stack (both operators) on a loaded machine."""


@dataclass
class OperatorProbe:
    """Where one operator's request count, CPU and memory are read."""

    pid: int
    metrics_url: str

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        hwm = re.search(r"VmHWM:\s+(\d+)", status)
        return round(int(hwm.group(1)) / 1024, 1) if hwm else 0.0

    def api_requests(self) -> float:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError as error:
            log.warning("metrics of operator pid %d unreadable: %s", self.pid, error)
            return float("nan")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("cloudkit_kubernetes_requests_total")
        )


@dataclass
class SideBySide:
    """One stack, two operators: namespace and probe per policy."""

    stack: StackHandle
    namespaces: dict[str, str]
    probes: dict[str, OperatorProbe]


async def start_side_by_side(state_dir: Path, boot: float) -> SideBySide:
    """The stack with our operator, then upstream's operator beside it in its own namespace,
    under the same ServiceAccount (deploy/operator's least privilege) and automation."""
    os.environ["CLOUDKIT_POLL_POLICY"] = OURS  # the stack's operator inherits it
    stack = await start_stack(
        provider="aap", state_dir=state_dir, vm_boot_seconds=boot, job_notifications=True
    )
    try:
        admin = state_dir / "apiserver" / "kubeconfig"
        await prepare_cluster(admin, UPSTREAM_NAMESPACE)
        endpoints = stack_environment.operator_endpoints(
            notification_port=free_port(), metrics_port=free_port(), health_port=free_port()
        )
        env = stack_environment.operator_env(
            stack_environment.base_env(os.environ, str(Path(sys.executable).parent)),
            provider="aap",
            backend_env=stack_environment.aap_operator_env(
                stack.automation_url, stack.automation_token_file
            ),
            namespace=UPSTREAM_NAMESPACE,
            endpoints=endpoints,
            notification_token=None,  # upstream has no job notifications
        )
        env |= {
            "CLOUDKIT_POLL_POLICY": UPSTREAM,
            "CLOUDKIT_LEADER_ELECTION_ID": UPSTREAM_LEASE,
            "CLOUDKIT_LEADER_ELECTION_IDENTITY": "operator-upstream-policy",
        }
        upstream: Child = await spawn_operator(
            state_dir / "apiserver" / "operator.kubeconfig",
            env=env,
            logs=state_dir / "logs",
            sink=None,
            name="operator-upstream-policy",
        )
        stack.children.append(upstream)  # stopped with the stack, first
        await operator_healthy(upstream, endpoints.health_url)
        upstream.collecting = False  # as the stack's own: nothing reads its lines from here on
    except BaseException:
        await stack.stop()
        raise
    ours = next(c for c in stack.children if c.name == "operator")
    return SideBySide(
        stack,
        namespaces={OURS: stack.instance_namespace, UPSTREAM: UPSTREAM_NAMESPACE},
        probes={
            OURS: OperatorProbe(ours.pid, stack.metrics_url),
            UPSTREAM: OperatorProbe(upstream.pid, endpoints.metrics_url),
        },
    )


def _jobs(stack: StackHandle) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.automation_token}"}
    results: list[dict[str, Any]] = []
    url: str | None = f"{stack.automation_url}/v2/jobs/?page_size=200&order_by=id"
    while url:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            page = json.load(r)
        results.extend(page["results"])
        nxt = page.get("next")
        url = f"{stack.automation_url.split('/api')[0]}{nxt}" if nxt else None
    return results


def _manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"templateID": "bench_template", "cores": 1, "memoryGiB": 1},
    }


def _settled(marks: Marks) -> bool:
    return marks.ready is not None or marks.failed is not None


def _await_provisions_finished(
    side: SideBySide, order: list[tuple[str, str]], deadline: float
) -> None:
    """Until the automation reports every provision job finished (see
    `baseline.provisions_running`); outside every figure: the delete is stamped after it."""
    wanted = [(side.namespaces[policy], name) for policy, name in order]
    while time.monotonic() < deadline:
        running = baseline.provisions_running(baseline.job_records(_jobs(side.stack)), wanted)
        if not running:
            return
        time.sleep(1.0)
    log.warning("provision jobs still running at the deadline: %s", running)


def run_round(
    side: SideBySide, custom: client.CustomObjectsApi, rnd: Round, timeout: float
) -> dict[str, Any]:
    """Both policies' N lifecycles at once; each policy's figures and the ratio."""
    watches = {p: InstanceWatch(custom, ns) for p, ns in side.namespaces.items()}
    for w in watches.values():
        w.start()
    order = rnd.instances()
    requests = {p: probe.api_requests() for p, probe in side.probes.items()}
    cpu = {p: probe.cpu_s() for p, probe in side.probes.items()}
    created: dict[str, float] = {}
    deleted: dict[str, float] = {}
    refused: dict[str, str] = {}
    try:
        for policy, name in order:
            created[name] = time.monotonic()
            try:
                custom.create_namespaced_custom_object(
                    names.GROUP,
                    names.VERSION,
                    side.namespaces[policy],
                    names.PLURAL,
                    _manifest(name, side.namespaces[policy]),
                )
            except ApiException as error:
                refused[name] = f"create refused: {error.status} {error.reason}"
        deadline = time.monotonic() + timeout
        for policy, name in order:
            if name not in refused:
                watches[policy].wait(name, _settled, max(0.0, deadline - time.monotonic()))
        _await_provisions_finished(side, order, deadline)
        for policy, name in order:
            deleted[name] = time.monotonic()
            try:
                custom.delete_namespaced_custom_object(
                    names.GROUP, names.VERSION, side.namespaces[policy], names.PLURAL, name
                )
            except ApiException as error:
                if error.status != 404:
                    refused.setdefault(name, f"delete refused: {error.status} {error.reason}")
        deadline = time.monotonic() + timeout
        for policy, name in order:
            watches[policy].wait(
                name, lambda m: m.gone is not None, max(0.0, deadline - time.monotonic())
            )
    finally:
        for w in watches.values():
            w.stop()
    records = baseline.job_records(_jobs(side.stack))
    by_policy: dict[str, list[Lifecycle]] = {p: [] for p in baseline.POLICIES}
    for policy, name in order:
        marks = watches[policy].marks.get(name, Marks())
        stamps = Stamps(
            created=created.get(name),
            ready=marks.ready,
            failed=marks.failed,
            deleted=deleted.get(name),
            gone=marks.gone,
            refused=refused.get(name, ""),
        )
        backend = baseline.backend_seconds(records, side.namespaces[policy], name)
        by_policy[policy].append(baseline.judge(policy, name, stamps, backend))
    result: dict[str, Any] = {"n": rnd.n, "round": rnd.index, "first": rnd.order[0]}
    for policy, lifecycles in by_policy.items():
        probe = side.probes[policy]
        spent_cpu = probe.cpu_s() - cpu[policy]
        result[policy] = {
            **baseline.figures(lifecycles),
            "api_requests_per_lifecycle": round(
                (probe.api_requests() - requests[policy]) / rnd.n, 1
            ),
            "operator_cpu_s": round(spent_cpu, 2),
            "operator_cpu_s_per_lifecycle": round(spent_cpu / rnd.n, 3),
            "operator_peak_rss_mb": probe.peak_rss_mb(),
        }
        for lifecycle in lifecycles:
            if not lifecycle.ok:
                print(
                    f"FAILED {policy} {lifecycle.instance} (N={rnd.n}, round {rnd.index}): "
                    f"{lifecycle.error}",
                    file=sys.stderr,
                )
    result["ratio"] = baseline.ratio(result[UPSTREAM], result[OURS])
    result["overhead_difference_s"] = baseline.difference(result[UPSTREAM], result[OURS])
    return result


async def run(
    sizes: list[int], rounds: int, boot: float, wait_s: float, budget_s: float | None
) -> list[dict[str, Any]]:
    """The plan, one stack per size (its rounds in a row), each round only if it is predicted
    to end within the budget."""
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    durations: dict[int, list[float]] = {}

    def fits(n: int, starting_stack: bool) -> bool:
        if budget_s is None:
            return True
        predicted = baseline.predicted_round_s(durations, n) or 0.0
        left = budget_s - (time.monotonic() - started) - (STACK_START_S if starting_stack else 0)
        if predicted <= left:
            return True
        print(
            f"budget: N={n} rounds not run (one predicted {predicted:.0f} s, {left:.0f} s left)",
            file=sys.stderr,
        )
        return False

    todo = baseline.plan(sizes, rounds)
    for n in sizes:
        mine = [r for r in todo if r.n == n]
        if not fits(n, starting_stack=True):
            continue
        with tempfile.TemporaryDirectory(prefix=f"ck-bench-{n}-") as tmp:
            side = await start_side_by_side(Path(tmp), boot)
            try:
                api = config.new_client_from_config(config_file=str(side.stack.kubeconfig))  # type: ignore[no-untyped-call]
                custom = client.CustomObjectsApi(api)
                for rnd in mine:
                    if not fits(n, starting_stack=False):
                        break
                    began = time.monotonic()
                    result = await asyncio.to_thread(run_round, side, custom, rnd, wait_s)
                    result["wall_s"] = round(time.monotonic() - began, 1)
                    durations.setdefault(n, []).append(result["wall_s"])
                    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
                    print(json.dumps(result), file=sys.stderr)
                    results.append(result)
            finally:
                await side.stack.stop()
    return results


def summary(results: list[dict[str, Any]], boot: float) -> dict[str, Any]:
    sizes = sorted({r["n"] for r in results})
    by_n = {str(n): baseline.spread(r["ratio"] for r in results if r["n"] == n) for n in sizes}
    difference_by_n = {
        str(n): baseline.spread(r["overhead_difference_s"] for r in results if r["n"] == n)
        for n in sizes
    }
    medians = [s["median"] for s in by_n.values() if s is not None]
    improvement = min(medians) if medians else None
    ratios = [r[OURS].get("overhead_ratio") for r in results]
    overhead = max((x for x in ratios if x is not None), default=None)
    return {
        "benchmark": "lifecycle",
        "provider": "aap",
        "vm_boot_seconds": boot,
        "overhead_ratio": overhead,
        "overhead_improvement_vs_fixed_poll": improvement,
        "overhead_improvement_by_n": by_n,
        "overhead_difference_s_by_n": difference_by_n,
        "rounds_run": {str(n): sum(1 for r in results if r["n"] == n) for n in sizes},
        "failed": sum(r[p]["failed"] for r in results for p in baseline.POLICIES),
        "goals": {
            "overhead_le_5pct": overhead is not None and overhead <= 0.05,
            "improvement_ge_5x": improvement is not None and improvement >= 5,
        },
        "rounds": results,
        "cpus": os.cpu_count(),
    }


def _expected_strays(record: logging.LogRecord) -> bool:
    """Drops the stack's warning about instances outside its operator's namespace for
    upstream's namespace, where the other operator reconciles them on purpose."""
    return not (record.name == "cloudkit.local.stack" and UPSTREAM_NAMESPACE in record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vm-boot-seconds", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per wait, seconds")
    parser.add_argument("--budget-minutes", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_expected_strays)
    sizes = [int(x) for x in args.sizes.split(",")]
    budget = args.budget_minutes * 60 if args.budget_minutes is not None else None
    results = asyncio.run(run(sizes, args.rounds, args.vm_boot_seconds, args.timeout, budget))
    print(json.dumps(summary(results, args.vm_boot_seconds), indent=2))


if __name__ == "__main__":
    main()
