"""The tenant's `cloudkit` subcommands: arguments in, the fulfillment client called, output
rendered once. Implementations are imported lazily, as in cloudkit.cli."""

from __future__ import annotations

from pathlib import Path

import typer

StateDir = typer.Option(Path(".cloudkit"), "--state-dir", help="The local stack's state directory.")


def token(
    tenant: str = typer.Option(..., "--tenant", help="Tenant (the token's organization)."),
    state_dir: Path = StateDir,
    user: str | None = typer.Option(None, "--user", help="User name (default: the tenant's)."),
    ttl: int = typer.Option(12 * 3600, "--ttl", min=1, help="Seconds the token is valid."),
) -> None:
    """Print a bearer token of the local stack's issuer (for scripts and curl)."""
    from cloudkit.local.issuer.tokens import mint

    try:
        typer.echo(mint(state_dir / "issuer", tenant=tenant, user=user, ttl_s=ttl))
    except FileNotFoundError:
        typer.echo(f"error: no local issuer in {state_dir} (is `cloudkit up` running?)", err=True)
        raise typer.Exit(1) from None


def issuer(
    state_dir: Path = typer.Option(Path(".cloudkit/issuer"), "--state-dir"),
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    audience: str = typer.Option("cloudkit-fulfillment", help="The tokens' audience."),
) -> None:
    """Run the local OIDC issuer (JWKS and discovery over HTTPS; DIR/issuer.json)."""
    from cloudkit.local.issuer.server import run

    run(issuer_dir=state_dir, port=port, host=host, audience=audience)
