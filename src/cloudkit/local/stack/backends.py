"""The automation backends of the local stack: the AWX-compatible service (AAP direct) or an
ansible-rulebook activation (EDA). Each starts as a supervised child and returns the
environment the operator needs to reach it."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cloudkit.local import eda
from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack.environment import (
    DEPROVISION_TEMPLATE,
    HOST,
    PROVISION_TEMPLATE,
    aap_operator_env,
    automation_url,
    eda_operator_env,
)
from cloudkit.local.stack.procs import (
    START_TIMEOUT_S,
    Child,
    ChildFailed,
    LogSink,
    cloudkit_command,
    spawn,
    wait_for_port,
)


class BackendError(RuntimeError):
    """A backend did not come up; the message says which and why."""


@dataclass
class Backend:
    child: Child
    url: str
    """Shown to people: the AWX API root, or the EDA webhook base (never with a token)."""
    token_file: Path
    operator_env: dict[str, str]
    title: str
    port: int
    activation: eda.EdaHandle | None = None
    """EDA only: stopping it also ends the playbooks ansible-rulebook started."""

    async def wait_ready(self) -> None:
        """Until the backend accepts connections; BackendError if it exits or takes too long."""
        try:
            await wait_for_port(HOST, self.port, self.child, START_TIMEOUT_S)
        except (TimeoutError, ChildFailed) as error:
            raise BackendError(f"{self.title} did not start: {error or 'timed out'}") from error


def playbooks_dir() -> Path:
    """The shipped playbooks, local/playbooks (beside this package, not in it)."""
    return Path(__file__).parent.parent / "playbooks"


def write_templates(
    path: Path,
    notification: Mapping[str, Any] | None,
    simulate: Mapping[str, Any] | None = None,
) -> None:
    """The two templates; `notification` is a webhook entry (url, headers) or None.

    `simulate` (the automation service's `simulate` settings, e.g. {"run_seconds": 2}) makes
    them simulated templates: the playbooks' effects without Ansible, for load tests."""
    playbooks = playbooks_dir()
    entries = [
        {
            "name": name,
            "description": description,
            **(
                {"kind": "simulated", "simulate": {**simulate, "effects": playbook[:-4]}}
                if simulate is not None
                else {"kind": "job_template", "playbook": str(playbooks / playbook)}
            ),
            "inventory": "localhost,",
            "ask_variables_on_launch": True,
            **({"notification": dict(notification)} if notification else {}),
        }
        for name, playbook, description in (
            (PROVISION_TEMPLATE, "provision.yml", "Create the VirtualMachine of an instance"),
            (DEPROVISION_TEMPLATE, "deprovision.yml", "Delete the VirtualMachines of an instance"),
        )
    ]
    private_dir(path.parent)
    # 0600: the notification headers carry the receiver's token.
    write_private(path, yaml.safe_dump(entries, sort_keys=False))


def _secret_file(path: Path) -> str:
    """A new random token stored with mode 0600."""
    private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


async def spawn_automation_backend(
    *,
    state_dir: Path,
    env: dict[str, str],
    logs: Path,
    sink: LogSink | None,
    notification: Mapping[str, Any] | None,
    port: int,
    simulate: Mapping[str, Any] | None = None,
) -> Backend:
    """Spawn the automation service; its port and token are fixed here, so the operator can
    start at the same time (`Backend.wait_ready()` waits for the service)."""
    automation_dir = state_dir / "automation"
    templates = automation_dir / "templates.yml"
    write_templates(templates, notification, simulate)
    token_file = automation_dir / "automation-token"
    if not token_file.exists():  # the service reuses a stored token
        _secret_file(token_file)
    command = cloudkit_command(
        "automation", "--state-dir", str(automation_dir), "--templates", str(templates)
    )
    child = await spawn(
        "automation", [*command, "--port", str(port)], env=env, log_dir=logs, sink=sink
    )
    url = automation_url(port)
    operator_env = aap_operator_env(url, token_file)
    return Backend(child, url, token_file, operator_env, "automation service", port)


async def start_eda_backend(
    *, state_dir: Path, env: dict[str, str], sink: LogSink | None, port: int
) -> Backend:
    """Start the EDA activation (ansible-rulebook, our rulebook and webhook source); returns
    once the webhook answers. `Backend.activation.stop()` also ends the playbooks it ran."""
    token_file = state_dir / "eda" / "webhook-token"
    token = _secret_file(token_file)
    try:
        activation = await eda.start_eda_activation(
            state_dir,
            provision_playbook=playbooks_dir() / "provision.yml",
            deprovision_playbook=playbooks_dir() / "deprovision.yml",
            port=port,
            env=env,
            token=token,
            sink=sink,
        )
    except eda.EdaStartError as error:
        raise BackendError(f"ansible-rulebook did not start: {error}") from error
    operator_env = eda_operator_env(
        activation.provision_url, activation.deprovision_url, token_file
    )
    return Backend(
        activation.child,
        activation.base_url,
        token_file,
        operator_env,
        "ansible-rulebook",
        activation.port,
        activation=activation,
    )
