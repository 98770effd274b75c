"""The `cloudkit` command: one entry point for every part (crds, apiserver, automation, up, ...).

Subcommands import their implementation lazily so `cloudkit crds` does not pay for aiohttp.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

StateDir = typer.Option(Path(".cloudkit"), "--state-dir", help="Directory for data and kubeconfig.")


@app.command()
def version() -> None:
    """Print the cloudkit version."""
    from cloudkit import __version__

    typer.echo(__version__)


@app.command()
def apiserver(
    state_dir: Path = StateDir,
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
) -> None:
    """Run the local Kubernetes-compatible API server (SQLite) and write DIR/kubeconfig."""
    from cloudkit.local.apiserver.main import run

    run(state_dir=state_dir, port=port, host=host)


@app.command()
def automation(
    state_dir: Path = StateDir,
    templates: Path = typer.Option(..., help="YAML file declaring job templates."),
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
) -> None:
    """Run the local AWX-compatible automation service (ansible-runner)."""
    from cloudkit.local.automation.main import run

    run(state_dir=state_dir, templates=templates, port=port, host=host)


def main() -> None:
    app()
