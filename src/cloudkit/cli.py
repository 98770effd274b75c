"""The `cloudkit` command: one entry point for every part (crds, apiserver, automation, up, ...)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def version() -> None:
    """Print the cloudkit version."""
    from cloudkit import __version__

    typer.echo(__version__)


def main() -> None:
    app()
