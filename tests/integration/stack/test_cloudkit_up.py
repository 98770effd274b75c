"""`cloudkit up` as a user runs it: a real subprocess, kubectl against it, a real playbook in
flight, and Ctrl-C stopping everything. (A dying child stopping the stack is the last test of
the AAP stack in tests/e2e/test_aap_stack.py; the EDA stack's private state is checked in
tests/e2e/test_eda_stack.py, after its scenarios ran their playbooks.)"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.up import Up, alive, cmdline, descendants, exposed_state
from tests.waiting import until_sync

pytestmark = pytest.mark.stack


def launch_provision_job(up: Up) -> None:
    """POST a launch of the provision template, as the operator's AAP provider does."""
    text = (up.state_dir / "automation" / "automation-token").read_text().strip()
    url = re.search(r"http://127\.0\.0\.1:\d+/api", up.output())
    assert url, up.output()
    headers = {"Authorization": f"Bearer {text}", "Content-Type": "application/json"}
    query = urllib.request.Request(
        f"{url.group(0)}/v2/job_templates/?name=cloudkit-provision-compute-instance",
        headers=headers,
    )
    with urllib.request.urlopen(query, timeout=10) as response:
        template_id = json.load(response)["results"][0]["id"]
    payload = {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": "in-flight", "namespace": "cloudkit-computeinstance"},
        "spec": {"templateID": "sample"},
    }
    body = json.dumps({"extra_vars": {"ansible_eda": {"event": {"payload": payload}}}}).encode()
    launch = urllib.request.Request(
        f"{url.group(0)}/v2/job_templates/{template_id}/launch/",
        data=body,
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(launch, timeout=10) as response:
        assert response.status == 201


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    stack = Up(tmp_path / "state", tmp_path / "up.log")
    try:
        yield stack
    finally:
        stack.kill()


def test_up_serves_kubectl_and_ctrl_c_stops_everything(up: Up) -> None:
    up.wait_ready()
    output = up.output()
    assert f"export KUBECONFIG={up.kubeconfig}" in output
    assert "API server" in output and "automation" in output

    ci = up.kubectl("get", "ci", "-A")
    assert ci.returncode == 0, ci.stderr
    vms = up.kubectl("get", "vm", "-A")
    assert vms.returncode == 0, vms.stderr
    ns = up.kubectl("get", "namespace", "cloudkit-computeinstance", "-o", "name")
    assert ns.stdout.strip() == "namespace/cloudkit-computeinstance"
    crds = up.kubectl("get", "crd", "-o", "name")
    assert "computeinstances.cloudkit.openshift.io" in crds.stdout
    assert "virtualmachines.kubevirt.io" in crds.stdout

    # A provision job in flight: its ansible-playbook (own session, via ansible-runner's pty)
    # must go too.
    launch_provision_job(up)
    until_sync(
        lambda: [pid for pid in descendants(up.process.pid) if b"ansible-playbook" in cmdline(pid)],
        bool,
        within=30,
        what="an ansible-playbook process",
        interval=0.1,
    )

    # Databases and their WAL files, tokens, kubeconfigs, the TLS key, logs and the running
    # job's variables: private to their owner, although the stack runs with umask 0.
    jobs = up.state_dir / "automation" / "jobs"
    assert any(p.is_file() for p in jobs.rglob("*")), "no job files to check"
    assert any(p.name.endswith("-wal") for p in up.state_dir.rglob("*")), "no WAL file"
    exposed = exposed_state(up.state_dir)
    assert exposed == [], "readable by others:\n" + "\n".join(exposed)

    children = descendants(up.process.pid)
    assert len(children) >= 3, "expected the API server, automation service and a playbook"
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=30) == 0, up.output()
    left = [pid for pid in children if alive(pid)]
    assert left == [], f"still running after Ctrl-C: {left}"
    assert not up.kubeconfig.exists(), "the kubeconfig must not outlive the stack"
    assert "nothing left running" in up.output()
