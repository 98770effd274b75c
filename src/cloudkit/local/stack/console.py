"""What `cloudkit up` shows a person: prefixed child logs, the ready panel, errors (rich).

It shows the data it is given (`ReadyStack`) and never imports the supervisor, which drives it;
an import-linter contract keeps it so.
"""

from __future__ import annotations

import logging
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from cloudkit.local.stack.orders_view import OrderRow
    from cloudkit.local.stack.replicas import OperatorsView


class ReadyStack(Protocol):
    """What the ready panel shows; the supervisor's StackHandle has all of it."""

    provider: str
    instance_namespace: str
    state_dir: Path
    kubeconfig: Path
    apiserver_url: str
    fulfillment_url: str
    automation_url: str
    automation_token_file: Path
    operator_running: bool
    metrics_url: str
    health_url: str
    notification_url: str
    vm_boot_seconds: float
    operator_replicas: int
    replica_health_urls: dict[str, str]
    leader: str | None

    @property
    def faults_seed(self) -> int | None: ...


_STYLES = cycle(["cyan", "magenta", "green", "yellow", "blue", "bright_red"])
_WIDTH = 10


class StackConsole:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._styles: dict[str, str] = {}

    def _style(self, name: str) -> str:
        if name not in self._styles:
            self._styles[name] = next(_STYLES)
        return self._styles[name]

    def child_line(self, name: str, line: str) -> None:
        prefix = Text(f"{name[:_WIDTH]:>{_WIDTH}} │ ", style=self._style(name))
        self.console.print(prefix + Text(line), soft_wrap=True)

    def logging_handler(self) -> logging.Handler:
        console = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                name = "simulator" if record.name.startswith("cloudkit.local.kubevirt") else "stack"
                console.child_line(name, self.format(record))

        handler = _Handler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        return handler

    def note(self, message: str) -> None:
        self.console.print(Text(message, style="bold"))

    def error(self, message: str) -> None:
        self.console.print(Panel(Text(message), title="cloudkit up failed", border_style="red"))

    def ready(self, handle: ReadyStack) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("provider", handle.provider)
        table.add_row(
            "instances in",
            f"namespace {handle.instance_namespace}  (the kubeconfig's default; the operator "
            "watches only it, instances elsewhere are reported, not provisioned)",
        )
        table.add_row("API server", handle.apiserver_url)
        if handle.fulfillment_url:
            table.add_row("fulfillment API", f"{handle.fulfillment_url}  (tenants; local issuer)")
        if handle.provider == "eda":
            table.add_row(
                "EDA (ansible-rulebook)",
                f"{handle.automation_url}/provision, /deprovision  "
                f"(token: {handle.automation_token_file})",
            )
        else:
            table.add_row(
                "automation (AWX API)",
                f"{handle.automation_url}/v2/  (token: {handle.automation_token_file})",
            )
        if handle.operator_running:
            standbys = sorted(set(handle.replica_health_urls) - {handle.leader or ""})
            table.add_row(
                "operators",
                f"{handle.operator_replicas} (leader {handle.leader or '?'}"
                + (f"; standby {', '.join(standbys)}" if standbys else "")
                + ")  — Lease cloudkit-operator-system/cloudkit-operator-leader",
            )
            table.add_row("operator metrics", handle.metrics_url)
            table.add_row("operator health", handle.health_url)
            table.add_row("job notifications", handle.notification_url)
        else:
            table.add_row("operator", Text("not running (cloudkit.operator missing)", "red"))
        table.add_row("VM simulator", f"boots and stops VMs in {handle.vm_boot_seconds:g}s")
        if handle.faults_seed is not None:
            table.add_row(
                "network faults",
                Text(
                    f"ON, seed {handle.faults_seed}: every link between the parts goes through "
                    f"a fault relay ({handle.state_dir / 'faults.json'})",
                    style="yellow",
                ),
            )
        table.add_row("state and logs", f"{handle.state_dir}  ({handle.state_dir / 'logs'})")
        table.add_row("", "")
        table.add_row("use it", Text(f"export KUBECONFIG={handle.kubeconfig}", style="green"))
        table.add_row("", Text("kubectl apply -f examples/minimal.yaml", style="green"))
        table.add_row("", Text("kubectl get ci -w", style="green"))
        table.add_row("", Text("kubectl get vm -A", style="green"))
        if handle.provider == "aap":
            # The AWX CLI reads these; the token stays in its file, never on screen.
            host = handle.automation_url.removesuffix("/api")
            token = f"$(cat {handle.automation_token_file})"
            awx = f"CONTROLLER_HOST={host} CONTROLLER_OAUTH_TOKEN={token} awx jobs list"
            table.add_row("", Text(awx, style="green"))
        if handle.fulfillment_url:
            login = f"cloudkit login --tenant acme --state-dir {handle.state_dir}"
            table.add_row("as a tenant", Text(login, style="green"))
            table.add_row("", Text("cloudkit get computeinstances -w", style="green"))
        table.add_row("stop", "Ctrl-C (stops everything)")
        self.console.print(Panel(table, title="cloudkit local stack is up", border_style="green"))
        # Once more outside the panel, unwrapped, for copy and paste.
        self.console.print(f"export KUBECONFIG={handle.kubeconfig}", soft_wrap=True)

    def operators(self, view: OperatorsView) -> None:
        """The operator replicas after a change (an exit, a restart, a takeover)."""
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("replica", "pid", "role", "restarts", "last exit"):
            table.add_column(column, style="bold" if column == "replica" else None)
        for replica in view.replicas:
            if not replica.running:
                role = Text("down, restarting", style="red")
            else:
                role = Text("leader", style="green") if replica.leader else Text("standby")
            table.add_row(
                replica.name,
                str(replica.pid or "-"),
                role,
                str(replica.restarts),
                replica.last_exit or "-",
            )
        title = f"operators — {view.leader or 'nobody'} leads (Lease {view.lease})"
        self.console.print(Panel(table, title=title, border_style="yellow"))

    def orders(self, rows: list[OrderRow]) -> None:
        """The tenants' orders beside their instances and jobs, after any change."""
        table = Table(box=None, padding=(0, 1), show_edge=False)
        for column in ("order", "name", "tenant", "state", "instance", "phase", "jobs"):
            table.add_column(column, style="bold" if column == "order" else None, no_wrap=True)
        for row in rows:
            style = {"RUNNING": "green", "FAILED": "red"}.get(row.state, "")
            jobs = row.provision_job
            if row.deprovision_job != "-":  # one job a line: an 80-column terminal fits it
                jobs += f"\n{row.deprovision_job}"
            table.add_row(
                row.id[:8],
                row.name,
                row.tenant,
                Text(row.state, style=style),
                row.instance,
                row.phase,
                jobs,
            )
        title = f"orders — {len(rows)} (fulfillment API, every tenant)"
        self.console.print(Panel(table, title=title, border_style="blue"))
