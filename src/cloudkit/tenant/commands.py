"""The tenant's `cloudkit` subcommands: arguments in, the fulfillment client called, output
rendered once. Exit codes as kubectl's: 0 done, 1 any error (a missing record among them,
"not found"), 2 a usage error. Implementations are imported lazily, as in cloudkit.cli.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from cloudkit.fulfillment.client import FulfillmentClient

T = TypeVar("T")

StateDir = typer.Option(Path(".cloudkit"), "--state-dir", help="The local stack's state directory.")
Output = typer.Option(None, "-o", "--output", help="table (default), json or yaml.")
Filter = typer.Option(None, "--filter", help="CEL over the object as `this`.")

create_app = typer.Typer(no_args_is_help=True, help="Create a record (computeinstance).")
get_app = typer.Typer(no_args_is_help=True, help="List or show records (computeinstances).")
describe_app = typer.Typer(no_args_is_help=True, help="Show a record in detail.")
delete_app = typer.Typer(no_args_is_help=True, help="Delete records.")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _run(work: Callable[[FulfillmentClient], Awaitable[T]], what: str = "") -> T:
    """`work` with a client of the logged-in API; every error rendered once, exit code 1."""
    import aiohttp

    from cloudkit.fulfillment.client import ApiError, FulfillmentClient
    from cloudkit.tenant.config import LoginError, LoginState
    from cloudkit.tenant.output import error_text

    async def main() -> T:
        state = LoginState.load()
        address, ca_file = state.where()
        ca = Path(ca_file) if ca_file else None
        async with FulfillmentClient(address, state.token_source(), ca_file=ca) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ApiError as error:
        raise _fail(error_text(error, what)) from None
    except LoginError as error:
        raise _fail(f"error: {error}") from None
    except aiohttp.ClientError as error:
        raise _fail(f"error: cannot reach the fulfillment API ({type(error).__name__})") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _format(output: str | None) -> str:
    from cloudkit.tenant.output import FORMATS

    fmt = output or "table"
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="-o")
    return fmt


# -- login and tokens ------------------------------------------------------------------------


def login(
    address: str | None = typer.Option(None, "--address", help="The API's https:// URL."),
    token: str | None = typer.Option(None, "--token", help="A bearer token to send."),
    token_script: str | None = typer.Option(
        None, "--token-script", help="A command printing a token; run before every call."
    ),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA bundle to trust."),
    tenant: str | None = typer.Option(
        None, "--tenant", help="Local stack: act as this tenant (tokens of its issuer)."
    ),
    user: str | None = typer.Option(None, "--user", help="Local stack: the user name."),
    state_dir: Path = StateDir,
) -> None:
    """Log in: check the API answers with these credentials, then keep them in the file named
    by CLOUDKIT_CONFIG (default ~/.config/cloudkit/config.json)."""
    from cloudkit.tenant.config import LoginState

    if tenant is not None:
        if address or token or token_script:
            raise typer.BadParameter("--tenant logs in to the local stack; no --address/--token")
        state = LoginState(address="", tenant=tenant, user=user, state_dir=str(state_dir.resolve()))
    else:
        if address is None or (token is None) == (token_script is None):
            raise typer.BadParameter("give --address and one of --token or --token-script")
        ca = str(ca_file.resolve()) if ca_file is not None else None
        state = LoginState(address=address, ca_file=ca, token=token, token_script=token_script)
    from cloudkit.tenant.config import LoginError

    try:
        where, _ = state.where()
    except LoginError as error:
        raise _fail(f"error: {error}") from None

    async def check(client: FulfillmentClient) -> None:
        await client.list(limit=0)

    _save_then(state, check)
    as_whom = f" as tenant {tenant}" if tenant else ""
    typer.echo(f"Logged in to {where}{as_whom}")


def _save_then(state: Any, check: Callable[[FulfillmentClient], Awaitable[None]]) -> None:
    """Check with the new state (the old one, if any, is kept until the check passes)."""
    from cloudkit.tenant.config import config_path

    path = config_path()
    previous = path.read_bytes() if path.exists() else None
    state.save(path)
    try:
        _run(check)
    except typer.Exit:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(previous)
        raise


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
        raise _fail(f"error: no local issuer in {state_dir} (is `cloudkit up` running?)") from None


def issuer(
    state_dir: Path = typer.Option(Path(".cloudkit/issuer"), "--state-dir"),
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    audience: str = typer.Option("cloudkit-fulfillment", help="The tokens' audience."),
) -> None:
    """Run the local OIDC issuer (JWKS and discovery over HTTPS; DIR/issuer.json)."""
    from cloudkit.local.issuer.server import run

    run(issuer_dir=state_dir, port=port, host=host, audience=audience)


# -- compute instances -------------------------------------------------------------------------


def _parameters(pairs: list[str], file: Path | None) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(file.read_text())
        if not isinstance(loaded, dict):
            raise typer.BadParameter(
                f"{file}: not a mapping of names to values", param_hint="--template-parameter-file"
            )
        values.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-p")
        values[key] = value
    return values


@create_app.command("computeinstance")
def create_computeinstance(
    name: str = typer.Option(..., "--name", help="A DNS label (not unique)."),
    template: str = typer.Option(..., "--template", help="Template id."),
    parameter: list[str] = typer.Option([], "-p", "--template-parameter", help="KEY=VALUE."),
    parameter_file: Path | None = typer.Option(
        None, "--template-parameter-file", exists=True, dir_okay=False, help="YAML or JSON map."
    ),
    image: str | None = typer.Option(None, "--image", help="Image reference."),
    ssh_public_key: str | None = typer.Option(None, "--ssh-public-key", help="Key text or file."),
    boot_disk_size: int | None = typer.Option(None, "--boot-disk-size", min=1, help="GiB."),
    run_strategy: str | None = typer.Option(None, "--run-strategy", help="Always or Halted."),
    user_data: Path | None = typer.Option(
        None, "--user-data", exists=True, dir_okay=False, help="cloud-init user data file."
    ),
    output: str | None = Output,
) -> None:
    """Order a compute instance; prints its id (or the object with -o json|yaml)."""
    spec: dict[str, Any] = {
        "template": template,
        "template_parameters": _parameters(parameter, parameter_file),
    }
    if image is not None:
        spec["image"] = {"source_type": "registry", "source_ref": image}
    if ssh_public_key is not None:
        key_file = Path(ssh_public_key)
        spec["ssh_public_key"] = (
            key_file.read_text().strip() if key_file.is_file() else ssh_public_key
        )
    if boot_disk_size is not None:
        spec["boot_disk"] = {"size_gib": boot_disk_size}
    if run_strategy is not None:
        spec["run_strategy"] = run_strategy
    if user_data is not None:
        spec["user_data"] = user_data.read_text()
    fmt = _format(output) if output else None

    async def create(client: FulfillmentClient) -> dict[str, Any]:
        return await client.create({"metadata": {"name": name}, "spec": spec})

    created = _run(create)
    if fmt in ("json", "yaml"):
        from cloudkit.tenant.output import dump

        typer.echo(dump(created, fmt))
    else:
        typer.echo(f"computeinstance/{created['id']} created")


def get_computeinstances(
    id: str | None = typer.Argument(None, help="One record's id; all of them without it."),
    output: str | None = Output,
    watch: bool = typer.Option(False, "-w", "--watch", help="Then follow changes."),
    filter: str | None = Filter,
) -> None:
    """List compute instances (or show one): table, json or yaml; -w follows the event stream
    and lists again whenever it breaks (delivery is at most once)."""
    from cloudkit.tenant import output as out

    fmt = _format(output)
    if watch:
        _run(lambda client: _watch(client, fmt, filter, id))
        return
    if id is not None:
        found = _run(lambda client: client.get(id), what=f'computeinstance "{id}"')
        typer.echo(out.dump(found, fmt) if fmt != "table" else out.table([out.row(found)]))
        return

    async def listed(client: FulfillmentClient) -> list[dict[str, Any]]:
        return await client.list_all(filter=filter)

    items = _run(listed)
    if fmt != "table":
        typer.echo(out.dump({"size": len(items), "total": len(items), "items": items}, fmt))
    elif items:
        typer.echo(out.table(out.row(obj) for obj in items))
    else:
        typer.echo("No resources found.", err=True)


async def _watch(client: FulfillmentClient, fmt: str, filter: str | None, id: str | None) -> None:
    """Subscribe, list, print, follow; when the stream ends, do it all again (after a pause
    when it broke, so a service that is down is not hammered: cloudkit.watching)."""
    import json

    import aiohttp

    from cloudkit.tenant import output as out
    from cloudkit.watching import Backoff, Cursor, Follower, follow

    def show(event: str, obj: dict[str, Any], header: bool) -> None:
        if fmt == "table":
            lines = out.table([(event, *out.row(obj))], ("EVENT", *out.COLUMNS)).splitlines()
            typer.echo("\n".join(lines if header else lines[1:]))
        else:
            record = {"type": event, "compute_instance": obj}
            typer.echo(json.dumps(record) if fmt == "json" else out.dump(record, fmt) + "\n---")

    header = True

    def shown(obj: dict[str, Any]) -> bool:
        return id is None or obj.get("id") == id

    async def relist() -> None:
        nonlocal header
        for obj in await client.list_all(filter=filter):
            if shown(obj):
                show("LISTED", obj, header)
                header = False

    async def on_event(event: dict[str, Any]) -> None:
        nonlocal header
        obj = event.get("compute_instance") or {}
        if shown(obj):
            kind = event.get("type")
            show(out.event_name(kind) if fmt == "table" else str(kind), obj, header)
            header = False

    events = Follower(
        relist=relist,
        watch=lambda _version: client.watch(filter=filter),
        on_event=on_event,
        version_of=lambda _event: None,
        versioned=False,
    )
    # The service going away is ridden out: listed again once it is back.
    transient = (OSError, aiohttp.ClientError)
    await follow(events, Cursor("the event stream", transient, backoff=Backoff(1.0, 1.0)))


def describe_computeinstance(id: str = typer.Argument(..., help="The record's id.")) -> None:
    """Show a compute instance: spec, status, conditions, jobs and its condition history."""
    from cloudkit.tenant.output import describe

    found = _run(lambda client: client.get(id), what=f'computeinstance "{id}"')
    typer.echo(describe(found))


def delete_computeinstance(ids: list[str] = typer.Argument(..., help="Ids to delete.")) -> None:
    """Delete compute instances (soft: each goes once its resources are released)."""
    for id in ids:

        async def delete(client: FulfillmentClient, id: str = id) -> None:
            await client.delete(id)

        _run(delete, what=f'computeinstance "{id}"')
        typer.echo(f'computeinstance "{id}" deleted')


# Singular, plural and short name, as kubectl accepts them.
for _name in ("computeinstances", "computeinstance", "ci"):
    get_app.command(_name, hidden=_name != "computeinstances")(get_computeinstances)
    describe_app.command(_name, hidden=_name != "computeinstance")(describe_computeinstance)
    delete_app.command(_name, hidden=_name != "computeinstance")(delete_computeinstance)
create_app.command("ci", hidden=True)(create_computeinstance)
