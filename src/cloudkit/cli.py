"""The `cloudkit` command: one entry point for every part (crds, apiserver, automation, up, ...).

Subcommands import their implementation lazily so `cloudkit crds` does not pay for aiohttp.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cloudkit.tenant import commands as tenant

if TYPE_CHECKING:
    from cloudkit.local.stack.fault_links import FaultSettings
    from cloudkit.scenarios.orders import TenantAccess

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


@app.command()
def fulfillment(
    state_dir: Path = StateDir,
    db: str | None = typer.Option(
        None, "--db", help="sqlite:///PATH or postgresql://…; default: SQLite in --state-dir."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serving certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key (PEM)."),
    issuer: list[str] = typer.Option([], "--issuer", help="Trusted OIDC issuer URL (repeat)."),
    audience: str | None = typer.Option(None, help="The `aud` a JWT must carry."),
    issuer_ca: Path | None = typer.Option(None, "--issuer-ca", help="CA bundle for issuers."),
    kubeconfig: Path | None = typer.Option(
        None, help="Cluster whose TokenReview checks ServiceAccount tokens."
    ),
    in_cluster: bool = typer.Option(False, help="TokenReview with the pod's own account."),
    admin: list[str] = typer.Option(
        [], "--admin", help="Admin ServiceAccount, NAMESPACE:NAME (repeat)."
    ),
) -> None:
    """Run the fulfillment API (HTTPS); its URL goes to DIR/fulfillment.address."""
    from cloudkit.fulfillment.service import OptionError, run, service_options

    try:
        options = service_options(
            state_dir=state_dir,
            database=db,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            issuers=issuer,
            audience=audience,
            issuer_ca=issuer_ca,
            kubeconfig=kubeconfig,
            in_cluster=in_cluster,
            admins=admin,
        )
    except OptionError as exc:
        typer.echo(f"cloudkit fulfillment: {exc}", err=True)
        raise typer.Exit(2) from None
    run(options)


@app.command("fulfillment-controller")
def fulfillment_controller(
    address: str = typer.Option(..., help="The fulfillment API's URL (https://HOST:PORT)."),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA bundle for the API."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="Bearer token file, re-read per request (default: the pod's ServiceAccount token).",
    ),
    hub_kubeconfigs: Path | None = typer.Option(
        None,
        "--hub-kubeconfigs",
        help="Directory of kubeconfigs, one per hub, named as the hubs' kubeconfig_ref.",
    ),
    kubeconfig: Path | None = typer.Option(
        None, help="Cluster holding the Lease (default: KUBECONFIG, in-cluster, ~/.kube/config)."
    ),
    leader_election: bool = typer.Option(True, help="Act only while holding the Lease."),
    lease_name: str = typer.Option("cloudkit-fulfillment-controller-leader", help="Lease name."),
    lease_namespace: str | None = typer.Option(
        None, help="Lease namespace (default: the pod's, else cloudkit-operator-system)."
    ),
    identity: str | None = typer.Option(None, help="This replica's holderIdentity."),
    resync_seconds: float = typer.Option(600.0, help="Period of the full re-list."),
    rewatch_seconds: float = typer.Option(2.0, help="Back-off before re-watching a broken stream."),
    workers: int = typer.Option(4, help="Records reconciled at once."),
) -> None:
    """Turn fulfillment records into ComputeInstances on their hubs (one replica acts)."""
    import os

    from cloudkit.fulfillment.controller.options import OptionError, controller_options

    try:
        options = controller_options(
            address=address,
            ca_file=ca_file,
            token_file=token_file,
            hub_kubeconfigs=hub_kubeconfigs,
            kubeconfig=kubeconfig,
            leader_election=leader_election,
            lease_name=lease_name,
            lease_namespace=lease_namespace,
            identity=identity,
            resync_s=resync_seconds,
            rewatch_s=rewatch_seconds,
            workers=workers,
            environ=dict(os.environ),
        )
    except OptionError as exc:
        typer.echo(f"cloudkit fulfillment-controller: {exc}", err=True)
        raise typer.Exit(2) from None
    from cloudkit.fulfillment.controller.runner import run

    raise typer.Exit(run(options))


@app.command()
def crds() -> None:
    """Print the CustomResourceDefinition YAML (the same as deploy/crds/)."""
    from cloudkit.api.crd import render_crds

    typer.echo(render_crds(), nl=False)


@app.command()
def operator(
    kubeconfig: Path | None = typer.Option(
        None,
        "--kubeconfig",
        help="Cluster to operate on (default: KUBECONFIG, the in-cluster account, ~/.kube/config).",
        exists=True,
        dir_okay=False,
    ),
) -> None:
    """Run the operator against the current kubeconfig (a real cluster or the local stack).

    Configured by CLOUDKIT_* environment variables (see README).
    """
    from cloudkit.operator.main import run

    run(kubeconfig)


Provider = typer.Option("aap", "--provider", help="aap (AAP direct) or eda (EDA webhooks).")
Faults = typer.Option(
    None,
    "--faults",
    metavar="SEED",
    help="Network faults on purpose: a relay on every link between the stack's parts "
    "refuses, resets, black-holes or slows connections by the plan this seed gives "
    "(the same seed, the same plan); DIR/faults.json says what each link suffered.",
)

FaultSpan = typer.Option(
    60.0,
    "--fault-span",
    min=12.0,
    metavar="SECONDS",
    help="With --faults: each link's plan (3 faults of up to 4 s) repeats every SECONDS.",
)


def _fault_settings(seed: int | None, span_s: float) -> FaultSettings | None:
    from cloudkit.local.stack.fault_links import FaultSettings

    return None if seed is None else FaultSettings(seed=seed, span_s=span_s)


@app.command()
def up(
    provider: str = Provider,
    state_dir: Path = StateDir,
    vm_boot_seconds: float = typer.Option(5.0, help="Seconds a VM takes to boot (and to stop)."),
    operator_replicas: int = typer.Option(
        1,
        min=1,
        help="Operator processes; one leads (by a Lease), the others stand by. A replica "
        "that exits is started again (back-off 1 s doubling to 30 s).",
    ),
    simulated_jobs: float | None = typer.Option(
        None,
        min=0,
        metavar="SECONDS",
        help="AAP jobs that simulate the playbooks' effects (no Ansible) and take this long: "
        "for load and failover runs.",
    ),
    faults: int | None = Faults,
    fault_span: float = FaultSpan,
) -> None:
    """Start the local stack: API server, automation service, VM simulator and operator."""
    from cloudkit.local.stack import run

    run(
        provider=provider,
        state_dir=state_dir,
        vm_boot_seconds=vm_boot_seconds,
        operator_replicas=operator_replicas,
        simulated_jobs=None if simulated_jobs is None else {"run_seconds": simulated_jobs},
        faults=_fault_settings(faults, fault_span),
    )


@app.command()
def demo(
    provider: str = Provider,
    state_dir: Path = StateDir,
    faults: int | None = Faults,
    fault_span: float = FaultSpan,
) -> None:
    """Start the stack, create instances, show progress live, delete one mid-provisioning."""
    from cloudkit.local.demo import run

    run(provider=provider, state_dir=state_dir, faults=_fault_settings(faults, fault_span))


@app.command()
def scenario(
    name: str = typer.Argument(..., help="delete-during-provision | lifecycle | restart"),
    provider: str = Provider,
    kubeconfig: Path | None = typer.Option(
        None, help="Run against this cluster; without it a local stack is started and stopped."
    ),
    json_report: Path | None = typer.Option(None, "--json", help="Write the report here."),
    namespace: str = typer.Option("cloudkit-computeinstance", help="Namespace of instances."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="State directory of the local stack (default: a temporary one)."
    ),
    via: str = typer.Option(
        "kubernetes",
        help="kubernetes: create and delete the resource; fulfillment: order and delete "
        "through the fulfillment API as a tenant (the local stack's issuer mints its tokens; "
        "with --kubeconfig, the tenant of `cloudkit login`).",
    ),
    faults: int | None = Faults,
    fault_span: float = FaultSpan,
) -> None:
    """Run an end-to-end scenario with named validations; exit 0 only if all pass, 1 for a
    product failure, 3 when the infrastructure's retry budget was spent."""
    from cloudkit.scenarios.cli import THROUGH_THE_API, VIA
    from cloudkit.scenarios.cli import run as run_scenario

    if via not in VIA:
        raise typer.BadParameter(f"use one of {', '.join(VIA)}", param_hint="--via")
    if via == "fulfillment" and name not in THROUGH_THE_API:
        # Said before a stack is started for nothing.
        raise typer.BadParameter(
            f"only {', '.join(THROUGH_THE_API)} run through the API, not {name}",
            param_hint="--via fulfillment",
        )

    def go(config_file: Path, stack_dir: Path | None = None) -> int:
        return run_scenario(
            name=name,
            provider=provider,
            kubeconfig=config_file,
            json_report=json_report,
            namespace=namespace,
            tenant=_scenario_tenant(stack_dir) if via == "fulfillment" else None,
        )

    if kubeconfig is not None:
        if faults is not None:
            raise typer.BadParameter("only a local stack has fault relays", param_hint="--faults")
        raise typer.Exit(go(kubeconfig))
    raise typer.Exit(
        _with_local_stack(provider, state_dir, go, faults=_fault_settings(faults, fault_span))
    )


def _scenario_tenant(stack_dir: Path | None) -> TenantAccess:
    """A scenario's tenant: a fresh one of the local stack's issuer in `stack_dir`, or (on
    another cluster) whoever `cloudkit login` stored."""
    import uuid

    from cloudkit.scenarios.orders import TenantAccess
    from cloudkit.tenant.config import LoginError, LoginState

    try:
        if stack_dir is not None:
            state = LoginState(
                address="", tenant=f"scenario-{uuid.uuid4().hex[:6]}", state_dir=str(stack_dir)
            )
        else:
            state = LoginState.load()
        address, ca_file = state.where()
        token = state.token_source()
    except LoginError as error:
        raise typer.BadParameter(str(error), param_hint="--via fulfillment") from None
    return TenantAccess(
        address, Path(ca_file) if ca_file else None, token, state.tenant or "(logged in)"
    )


def _with_local_stack(
    provider: str,
    state_dir: Path | None,
    work: Callable[[Path, Path], int],
    *,
    faults: FaultSettings | None = None,
) -> int:
    """Start the local stack, run `work(kubeconfig, state_dir)` in a thread, always stop it."""
    import asyncio
    import tempfile

    from cloudkit.local.stack import start_stack

    directory = state_dir or Path(tempfile.mkdtemp(prefix="cloudkit-scenario-"))

    async def main() -> int:
        with_faults = "" if faults is None else f", faults on (seed {faults.seed})"
        typer.echo(f"starting a local stack ({provider}{with_faults}) in {directory} ...")
        stack = await start_stack(provider=provider, state_dir=directory, faults=faults)
        try:
            return await asyncio.to_thread(work, stack.kubeconfig, stack.state_dir)
        finally:
            await stack.stop()

    return asyncio.run(main())


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks users run to compare providers.")
app.add_typer(bench_app, name="bench")


@bench_app.command("latency")
def bench_latency(
    providers: str = typer.Option("aap,eda", help="Providers to compare (local stacks)."),
    runs: int = typer.Option(3, min=1, help="Rounds; providers take turns in each."),
    parallel: int = typer.Option(3, min=1, help="Simultaneous lifecycles per round."),
    vm_boot_seconds: float = typer.Option(5.0, help="Seconds a VM takes to boot (and to stop)."),
    out: Path = typer.Option(Path("."), help="Directory for the CSV, summary and PNG."),
    kubeconfig: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Measure the operator deployed on this cluster (its provider) instead of local "
        "stacks; rows are appended to the CSV, so two deployments make one comparison.",
    ),
    namespace: str = typer.Option("cloudkit-computeinstance", help="Namespace of instances."),
    timeout: float = typer.Option(600.0, help="Seconds each phase of a lifecycle may take."),
) -> None:
    """Full lifecycles (create → Ready, delete → gone) per provider, side by side: writes
    latency_results.csv, latency_summary.md and latency.png; exit 0 only if all completed."""
    import shlex
    import sys

    from rich.console import Console

    from cloudkit.bench.latency import LatencyOptions, Target, run_latency

    options = LatencyOptions(
        runs=runs,
        parallel=parallel,
        out=out,
        namespace=namespace,
        timeout_s=timeout,
        vm_boot_seconds=None if kubeconfig is not None else vm_boot_seconds,
        command=shlex.join(["cloudkit", *sys.argv[1:]]),
        append=kubeconfig is not None,
    )
    console = Console(stderr=True)
    if kubeconfig is not None:
        target = Target(kubeconfig, provider="", deployment=_server_of(kubeconfig))
        raise typer.Exit(run_latency([target], options, console))
    wanted = [p.strip() for p in providers.split(",") if p.strip()]
    if not wanted or len(set(wanted)) != len(wanted):
        raise typer.BadParameter("name each provider once, e.g. aap,eda", param_hint="--providers")

    def go(kubeconfigs: list[Path]) -> int:
        targets = [Target(k, provider=p) for p, k in zip(wanted, kubeconfigs, strict=True)]
        return run_latency(targets, options, console)

    raise typer.Exit(_with_local_stacks(wanted, vm_boot_seconds, go))


def _server_of(kubeconfig: Path) -> str:
    """The API server a kubeconfig's current context points at (names the deployment)."""
    import yaml

    loaded = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c.get("name"): c.get("context", {}) for c in loaded.get("contexts") or []}
    cluster_name = contexts.get(loaded.get("current-context"), {}).get("cluster")
    clusters = {c.get("name"): c.get("cluster", {}) for c in loaded.get("clusters") or []}
    return str(clusters.get(cluster_name, {}).get("server") or "cluster")


def _with_local_stacks(
    providers: list[str], vm_boot_seconds: float, work: Callable[[list[Path]], int]
) -> int:
    """A fresh local stack per provider, all up at once; `work(kubeconfigs)` in a thread;
    every stack stopped afterwards (as `_with_local_stack`, for several)."""
    import asyncio
    import shutil
    import tempfile

    from cloudkit.local.stack import StackError, StackHandle, start_stack

    directories: list[Path] = []

    async def main() -> int:
        for provider in providers:
            directories.append(Path(tempfile.mkdtemp(prefix=f"cloudkit-bench-{provider}-")))
            typer.echo(f"starting a local stack ({provider}) in {directories[-1]} ...", err=True)
        # Side by side: EDA's rule engine takes a while to start; AAP's stack need not wait.
        started = await asyncio.gather(
            *(
                start_stack(provider=p, state_dir=d, vm_boot_seconds=vm_boot_seconds)
                for p, d in zip(providers, directories, strict=True)
            ),
            return_exceptions=True,
        )
        stacks = [s for s in started if isinstance(s, StackHandle)]
        try:
            for failure in started:
                if isinstance(failure, StackError):
                    typer.echo(f"cannot start the local stack: {failure}", err=True)
                    return 2
                if isinstance(failure, BaseException):
                    raise failure
            return await asyncio.to_thread(work, [stack.kubeconfig for stack in stacks])
        finally:
            for stack in stacks:
                await stack.stop()

    code = asyncio.run(main())
    if code == 0:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    else:  # the stacks' logs say why
        typer.echo(f"stack logs kept in: {', '.join(map(str, directories))}", err=True)
    return code


app.command()(tenant.issuer)
app.command()(tenant.token)
app.command()(tenant.login)
app.add_typer(tenant.create_app, name="create")
app.add_typer(tenant.get_app, name="get")
app.add_typer(tenant.describe_app, name="describe")
app.add_typer(tenant.delete_app, name="delete")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
