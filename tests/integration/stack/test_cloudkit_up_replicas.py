"""`cloudkit up` keeps its operators running as a kubelet keeps a pod's containers: a replica
that dies is started again (same identity, back-off) and the stack runs on.

Through the real command, as a user runs it: the leader of two replicas SIGKILLed, and the one
replica that exits on its lost Lease while the API server hangs (SIGSTOP) past its renew
deadline. Each time a replica leads again, every instance in flight completes, and the
automation service ran one provision and one deprovision job per instance. Who leads and each
replica's pid come from DIR/operators.json, which the stack publishes. Jobs are simulated
(`--simulated-jobs`: the playbooks' effects without Ansible) to keep the runs short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.stack.test_cloudkit_up import Up, alive, descendants

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

LIFECYCLE_S = 240.0
"""Generous: the machine is shared; a deadline only bounds a failure."""
SIMULATED = ("--simulated-jobs", "3")


def wait_for(check: Callable[[], Any], *, within: float, what: str, up: Up) -> Any:
    """Until `check()` is truthy (its value); fails naming `what`, or if `cloudkit up` exits."""
    deadline = time.monotonic() + within
    while not (value := check()):
        assert up.process.poll() is None, f"cloudkit up exited:\n{up.output()[-4000:]}"
        assert time.monotonic() < deadline, f"{what} not within {within:g}s:\n{up.output()[-3000:]}"
        time.sleep(0.2)
    return value


def operators(up: Up) -> dict[str, Any]:
    """DIR/operators.json; {} while it is being replaced."""
    try:
        found: dict[str, Any] = json.loads((up.state_dir / "operators.json").read_text())
    except (OSError, ValueError):
        return {}
    return found


def replica(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in status.get("replicas", []) if r["name"] == name)


def renewed_since(up: Up, wall: float) -> str | None:
    """The Lease's holder if it was renewed (or taken) after `wall` (epoch seconds): a live
    process holds it, not the record of a dead one."""
    found = up.kubectl(
        "get", "lease", "-n", "cloudkit-operator-system", "cloudkit-operator-leader", "-o", "json"
    )
    assert found.returncode == 0, found.stderr
    spec = json.loads(found.stdout)["spec"]
    renewed = datetime.strptime(spec.get("renewTime") or "", "%Y-%m-%dT%H:%M:%S.%fZ")
    if renewed.replace(tzinfo=UTC).timestamp() <= wall:
        return None
    return str(spec.get("holderIdentity") or "") or None


def instances(up: Up) -> dict[str, dict[str, Any]]:
    listed = up.kubectl("get", "ci", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {i["metadata"]["name"]: i for i in json.loads(listed.stdout)["items"]}


def create(up: Up, names: list[str], directory: Path) -> None:
    for name in names:
        manifest = directory / f"{name}.json"
        manifest.write_text(
            json.dumps(
                {
                    "apiVersion": "cloudkit.openshift.io/v1alpha1",
                    "kind": "ComputeInstance",
                    "metadata": {"name": name},
                    "spec": {"templateID": "cloudkit_templates_ocp_virt_vm"},
                }
            )
        )
        applied = up.kubectl("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr


def provision_job_in_flight(up: Up, names: list[str]) -> bool:
    found = instances(up)
    return any(
        ((found.get(n) or {}).get("status") or {}).get("provisionJob", {}).get("id") for n in names
    )


def all_ready(up: Up, names: list[str]) -> bool:
    found = instances(up)
    return all(((found.get(n) or {}).get("status") or {}).get("phase") == "Ready" for n in names)


def delete_and_wait_gone(up: Up, names: list[str]) -> None:
    deleted = up.kubectl("delete", "ci", *names, "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        lambda: not set(names) & set(instances(up)),
        within=LIFECYCLE_S,
        what="instances gone",
        up=up,
    )


def jobs_by_instance(up: Up) -> dict[str, list[str]]:
    """The automation service's jobs, read as a user would (AWX API, bearer token): the
    template kinds launched per instance."""
    token = (up.state_dir / "automation" / "automation-token").read_text().strip()
    base = re.search(r"http://127\.0\.0\.1:\d+/api", up.output())
    assert base, up.output()
    request = urllib.request.Request(
        f"{base.group(0)}/v2/jobs/?page_size=200&order_by=id",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        rows = json.load(response)["results"]
    kinds: dict[str, list[str]] = {}
    for row in rows:
        extra = json.loads(row.get("extra_vars") or "{}")
        payload = ((extra.get("ansible_eda") or {}).get("event") or {}).get("payload") or {}
        instance = (payload.get("metadata") or {}).get("name", "")
        kind = "provision" if "provision-compute" in row["name"] else row["name"]
        kind = "deprovision" if "deprovision" in row["name"] else kind
        kinds.setdefault(instance, []).append(kind)
    return kinds


def each_launched_once(up: Up, names: list[str]) -> None:
    kinds = jobs_by_instance(up)
    want = ["deprovision", "provision"]
    wrong = {n: kinds.get(n) for n in names if sorted(kinds.get(n) or []) != want}
    assert not wrong, f"one provision and one deprovision job per instance: {wrong}"


def stop_with_ctrl_c(up: Up) -> None:
    children = descendants(up.process.pid)
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=60) == 0, up.output()[-3000:]
    left = [pid for pid in children if alive(pid)]
    assert left == [], f"still running after Ctrl-C: {left}"
    assert not (up.state_dir / "operators.json").exists(), "the status must not outlive the stack"


def test_the_leader_of_two_replicas_killed_the_stack_runs_on(tmp_path: Path) -> None:
    up = Up(
        tmp_path / "state",
        tmp_path / "up.log",
        options=("--operator-replicas", "2", *SIMULATED),
    )
    try:
        up.wait_ready()
        status = wait_for(lambda: operators(up), within=30, what="operators.json", up=up)
        leader = status["leader"]
        assert leader in {"operator", "operator-2"}, status
        killed = replica(status, leader)["pid"]
        names = [f"ha-{i}" for i in range(3)]
        create(up, names, tmp_path)
        wait_for(
            lambda: provision_job_in_flight(up, names),
            within=LIFECYCLE_S,
            what="a provision job in flight",
            up=up,
        )

        os.kill(killed, signal.SIGKILL)
        killed_at = time.time()

        def led_again() -> dict[str, Any] | None:
            holder = renewed_since(up, killed_at)
            now = operators(up)
            if holder is None or not now or replica(now, leader)["restarts"] < 1:
                return None
            mine = replica(now, holder)
            return now if now["leader"] == holder and mine["running"] else None

        after = wait_for(led_again, within=LIFECYCLE_S, what="a live replica leading", up=up)
        print(f"\nafter the kill: {json.dumps(after)}")
        assert "killed by SIGKILL" in replica(after, leader)["last_exit"]
        # Every replica runs again: one that exited meanwhile (for any reason) is in its
        # back-off, so this is a condition with a deadline, not the state at one instant.
        wait_for(
            lambda: all(r["running"] for r in operators(up).get("replicas", [])),
            within=LIFECYCLE_S,
            what="every replica running",
            up=up,
        )
        wait_for(lambda: all_ready(up, names), within=LIFECYCLE_S, what="all Ready", up=up)
        delete_and_wait_gone(up, names)
        each_launched_once(up, names)
        output = up.output()
        assert f"{leader} killed by SIGKILL; starting it again in 1s" in output
        assert re.search(r"operators — \S+ leads", output), "the panel shows the change"
        stop_with_ctrl_c(up)
    finally:
        up.kill()


def test_the_one_replica_that_lost_its_lease_is_started_again(tmp_path: Path) -> None:
    # Shorter election timings (the operator reads them from the caller's environment, which
    # the stack passes on) so the API server need hang only a few seconds.
    timings = {
        "CLOUDKIT_LEADER_ELECTION_LEASE_DURATION": "6s",
        "CLOUDKIT_LEADER_ELECTION_RENEW_DEADLINE": "4s",
        "CLOUDKIT_LEADER_ELECTION_RETRY_PERIOD": "1s",
    }
    up = Up(tmp_path / "state", tmp_path / "up.log", options=SIMULATED, environ=timings)
    try:
        up.wait_ready()
        names = [f"hang-{i}" for i in range(2)]
        create(up, names, tmp_path)
        wait_for(
            lambda: provision_job_in_flight(up, names),
            within=LIFECYCLE_S,
            what="a provision job in flight",
            up=up,
        )
        apiserver = next(
            pid
            for pid in descendants(up.process.pid)
            if b"\0apiserver\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        first = replica(operators(up), "operator")["pid"]

        os.kill(apiserver, signal.SIGSTOP)  # hung: connections open, no answers
        try:
            exited = wait_for(
                lambda: (s := operators(up)) and replica(s, "operator")["last_exit"] and s,
                within=LIFECYCLE_S,
                what="the operator's exit on its lost Lease",
                up=up,
            )
        finally:
            os.kill(apiserver, signal.SIGCONT)
        # The lost leader is dead by now: a renewal stamped later is the restarted replica's.
        resumed_at = time.time()
        print(f"\nwhile hung: {json.dumps(exited)}")
        assert "exited with code 1" in replica(exited, "operator")["last_exit"]

        def leads_again() -> bool:
            now = operators(up)
            mine = replica(now, "operator") if now else {}
            return bool(
                renewed_since(up, resumed_at) == "operator"  # the same identity, renewing again
                and now
                and now["leader"] == "operator"
                and mine["running"]
                and mine["restarts"] >= 1
                and mine["pid"] != first
            )

        wait_for(leads_again, within=LIFECYCLE_S, what="the restarted replica leading", up=up)
        wait_for(lambda: all_ready(up, names), within=LIFECYCLE_S, what="all Ready", up=up)
        delete_and_wait_gone(up, names)
        each_launched_once(up, names)
        assert "lost the leader Lease" in up.output()
        stop_with_ctrl_c(up)
    finally:
        up.kill()
