"""Runs the EDA activation: real ansible-rulebook with our rulebook and webhook source.

`start_eda_activation` writes the activation's files under a state directory (vars 0600,
inventory), starts ansible-rulebook in its own process group, and returns once the webhook
answers. `EdaHandle.stop()` ends ansible-rulebook and every process it started, including
playbooks that ansible-runner put in sessions of their own (found by an environment marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack.procs import Child, LogSink, spawn

HOST = "127.0.0.1"
RULEBOOK = Path(__file__).parent / "rulebook.yml"
SOURCES_DIR = Path(__file__).parent / "sources"
PROVISION_ENDPOINT = "provision"
DEPROVISION_ENDPOINT = "deprovision"
# The JVM behind ansible-rulebook's rule engine takes a while on a busy two-core machine.
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 8.0
PROBE_INTERVAL_S = 0.1
MARKER_ENV = "CLOUDKIT_EDA_ACTIVATION"


class EdaStartError(RuntimeError):
    """ansible-rulebook did not come up; the message carries the tail of its output."""


@dataclass
class EdaHandle:
    """A running activation. URLs never carry the token (see `token`)."""

    child: Child
    port: int
    token: str
    started_in_s: float
    """Seconds from spawning ansible-rulebook until the webhook answered."""
    log_file: Path
    marker: str
    """Value of MARKER_ENV in the environment of ansible-rulebook and all it starts."""
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def provision_url(self) -> str:
        return f"{self.base_url}/{PROVISION_ENDPOINT}"

    @property
    def deprovision_url(self) -> str:
        return f"{self.base_url}/{DEPROVISION_ENDPOINT}"

    @property
    def pid(self) -> int:
        return self.child.pid

    def running(self) -> bool:
        return self.child.process.returncode is None

    def processes(self) -> list[int]:
        """Live processes of this activation: ansible-rulebook and everything it started."""
        return marked_pids(self.marker)

    async def stop(self) -> None:
        """SIGTERM, grace, SIGKILL for the group; then SIGKILL whatever still carries the marker.

        ansible-runner starts each playbook in a session of its own, so a group kill misses
        it, and once ansible-rulebook is gone the playbook is re-parented; the environment
        marker finds it wherever it ended up.
        """
        if self._stopped:
            return
        self._stopped = True
        await self.child.stop(STOP_GRACE_S)
        deadline = time.monotonic() + STOP_GRACE_S
        while pids := self.processes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"EDA activation processes survived SIGKILL: {pids}")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(PROBE_INTERVAL_S)


def marked_pids(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds MARKER_ENV=marker (Linux /proc)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2 :].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def _child_env(env: Mapping[str, str] | None, marker: str) -> dict[str, str]:
    # The marker is inherited by every process ansible-rulebook starts (ansible-runner passes
    # the environment on), so stop() can find playbooks that left the process group.
    merged = {**os.environ, **(env or {}), MARKER_ENV: marker}
    # ansible-runner finds ansible-playbook on PATH: put this interpreter's bin dir first.
    bin_dir = str(Path(sys.executable).parent)
    merged["PATH"] = os.pathsep.join([bin_dir, merged.get("PATH", "")])
    # Events and playbook output arrive promptly in the log (not held in a pipe buffer).
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def _write_activation_files(
    eda_dir: Path,
    *,
    port: int,
    token: str,
    provision_playbook: Path,
    deprovision_playbook: Path,
) -> tuple[Path, Path, Path]:
    private_dir(eda_dir)
    port_file = eda_dir / "webhook-port"
    port_file.unlink(missing_ok=True)
    variables = {
        "webhook_host": HOST,
        "webhook_port": port,
        "webhook_port_file": str(port_file),
        "webhook_token": token,
        "provision_playbook": str(provision_playbook.resolve()),
        "deprovision_playbook": str(deprovision_playbook.resolve()),
    }
    vars_file = eda_dir / "vars.yml"
    # 0600, as all state: the vars file holds the webhook token.
    write_private(vars_file, yaml.safe_dump(variables, sort_keys=False))
    inventory = eda_dir / "inventory.yml"
    # The interpreter running ansible-playbook, not discovery: a python shim on PATH may be
    # broken, and discovery costs time on every run.
    hosts = {
        "localhost": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        }
    }
    write_private(inventory, yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))
    return vars_file, inventory, port_file


def _read_port(port_file: Path) -> int | None:
    """The port the source wrote (a few bytes on local disk: not worth a thread)."""
    try:
        return int(port_file.read_text())
    except (OSError, ValueError):
        return None


async def _wait_until_answering(child: Child, port_file: Path, deadline: float) -> int:
    """The bound port, once GET /healthz answers 200; fails if ansible-rulebook exits."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        while time.monotonic() < deadline:
            if child.process.returncode is not None:
                raise EdaStartError(f"ansible-rulebook failed to start: {child.describe_exit()}")
            port = _read_port(port_file)
            if port is None:
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"http://{HOST}:{port}/healthz") as response:
                    if response.status == 200:
                        return port
            await asyncio.sleep(PROBE_INTERVAL_S)
    raise EdaStartError(
        "ansible-rulebook did not open its webhook in time; last output:\n"
        + "\n".join(list(child.tail)[-15:])
    )


async def start_eda_activation(
    state_dir: Path,
    *,
    provision_playbook: Path,
    deprovision_playbook: Path,
    port: int = 0,
    env: dict[str, str] | None = None,
    token: str | None = None,
    sink: LogSink | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
) -> EdaHandle:
    """Start ansible-rulebook; return once the webhook answers.

    Files go to `state_dir/eda/` (rulebook vars, inventory, ansible-rulebook.log). `env` is
    added to this process's environment for ansible-rulebook and the playbooks it runs (e.g.
    K8S_AUTH_KUBECONFIG). `token`: None = no auth (upstream's EDA webhooks have none); "" =
    generate one; otherwise required as an `Authorization: Bearer` header (never in the
    URL: a `?token=` is refused). `sink` receives each output line, as for the stack's
    other children.
    """
    for playbook in (provision_playbook, deprovision_playbook):
        if not playbook.is_file():
            raise EdaStartError(f"playbook not found: {playbook}")
    if token == "":
        token = secrets.token_urlsafe(32)
    eda_dir = state_dir / "eda"
    vars_file, inventory, port_file = _write_activation_files(
        eda_dir,
        port=port,
        token=token or "",
        provision_playbook=provision_playbook,
        deprovision_playbook=deprovision_playbook,
    )
    command = [
        str(Path(sys.executable).parent / "ansible-rulebook"),
        "--rulebook",
        str(RULEBOOK),
        "--inventory",
        str(inventory),
        "--vars",
        str(vars_file),
        "--source-dir",
        str(SOURCES_DIR),
    ]
    marker = secrets.token_hex(8)
    began = time.monotonic()
    # spawn: own session (process group), output to eda/ansible-rulebook.log, and SIGTERM
    # if this process dies.
    child_env = _child_env(env, marker)
    child = await spawn(
        "ansible-rulebook", command, env=child_env, log_dir=eda_dir, sink=sink, cwd=eda_dir
    )
    try:
        bound = await _wait_until_answering(child, port_file, began + start_timeout_s)
    except BaseException:
        await child.stop(STOP_GRACE_S)
        for pid in marked_pids(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        raise
    return EdaHandle(
        child=child,
        port=bound,
        token=token or "",
        started_in_s=time.monotonic() - began,
        log_file=eda_dir / "ansible-rulebook.log",
        marker=marker,
    )
