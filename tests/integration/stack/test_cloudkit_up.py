"""`cloudkit up` as a user runs it: a real subprocess, kubectl against it, Ctrl-C, a crash."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.waiting import until_sync

pytestmark = pytest.mark.stack

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 300.0
"""Only bounds a failure: on a shared, loaded machine an EDA stack took over 90 s to start."""


def descendants(pid: int) -> set[int]:
    """All live descendants of `pid`, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


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


class Up:
    def __init__(
        self,
        state_dir: Path,
        log: Path,
        provider: str = "aap",
        *,
        options: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`cloudkit up` with `options` added, and `environ` added to this environment."""
        self.state_dir = state_dir
        self.log = log
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "COLUMNS": "120"}
        env.update(environ or {})
        command = ["up", "--state-dir", str(state_dir), "--vm-boot-seconds", "1", *options]
        self.process = subprocess.Popen(
            [str(BIN / "cloudkit"), *command, "--provider", provider],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # The most permissive umask: the stack's state must be private by its own doing.
            umask=0,
        )

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:

        def ready() -> bool:
            assert self.process.poll() is None, f"cloudkit up exited early:\n{self.output()}"
            return self.kubeconfig.exists() and "export KUBECONFIG=" in self.output()

        until_sync(ready, bool, within=START_TIMEOUT_S, what="the kubeconfig", interval=0.1)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "kubectl"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.state_dir / "kube-cache"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def exposed_state(state_dir: Path) -> list[str]:
    """Everything under the state directory that anyone but its owner could read or enter,
    as "mode path"; the test's own kubectl cache (not the stack's) is left out."""
    found = []
    for root, dirs, files in os.walk(state_dir):
        dirs[:] = [d for d in dirs if Path(root, d) != state_dir / "kube-cache"]
        for path in [Path(root)] + [Path(root, f) for f in files]:
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue  # a finished job's directory went away under the walk
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077 or (stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700):
                found.append(f"{stat.S_IMODE(mode):04o} {path.relative_to(state_dir)}")
    return found


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


def test_a_dying_child_stops_the_stack_with_a_clear_message(up: Up) -> None:
    up.wait_ready()
    children = descendants(up.process.pid)
    automation = next(
        pid
        for pid in children
        if b"automation" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"--templates" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(automation, signal.SIGKILL)
    assert up.process.wait(timeout=30) == 1, up.output()
    assert "automation exited with code -9" in up.output()
    left = [pid for pid in children if alive(pid)]
    assert left == [], f"still running after a child died: {left}"


def test_eda_stack_state_is_private(tmp_path: Path) -> None:
    stack = Up(tmp_path / "state", tmp_path / "up.log", provider="eda")
    try:
        stack.wait_ready()
        eda = stack.state_dir / "eda"
        # The activation's variables and the operator's copy of the token hold the webhook
        # token; ansible-rulebook writes its log and port file on its own.
        assert {"vars.yml", "webhook-token", "webhook-port"} <= {p.name for p in eda.iterdir()}
        exposed = exposed_state(stack.state_dir)
        assert exposed == [], "readable by others:\n" + "\n".join(exposed)
    finally:
        stack.kill()
