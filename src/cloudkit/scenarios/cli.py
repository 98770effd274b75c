"""Run a named scenario against a kubeconfig, print each validation and the infrastructure
errors retried, write the JSON report, and exit with what stopped it: 0 passed, 1 a product
failure, 2 the scenario could not start, 3 the infrastructure's retry budget was spent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cloudkit.scenarios.infrastructure import (
    EXIT_COULD_NOT_RUN,
    EXIT_PASSED,
    EXIT_PRODUCT_FAILURE,
    EXIT_RETRY_BUDGET_SPENT,
    RetryBudgetSpent,
)
from cloudkit.scenarios.orders import Orders, TenantAccess
from cloudkit.scenarios.restart import restart
from cloudkit.scenarios.runner import Scenario, ScenarioError, delete_during_provision, lifecycle
from cloudkit.scenarios.validations import Report

SCENARIOS: dict[str, Callable[[Scenario], Report]] = {
    "delete-during-provision": delete_during_provision,
    "lifecycle": lifecycle,
    "restart": restart,
}
VIA = ("kubernetes", "fulfillment")
THROUGH_THE_API = ("delete-during-provision", "lifecycle", "restart")
"""The scenarios that can order through the fulfillment API (`--via fulfillment`)."""


def render(report: Report, console: Console) -> None:
    via = f" via {report.via}" if report.via != "kubernetes" else ""
    table = Table(title=f"{report.scenario}{via} ({report.provider}) {report.instance}")
    table.add_column("validation")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.validations:
        mark = "[green]PASS[/]" if check.passed else "[red]FAIL[/]"
        table.add_row(check.name, mark, check.detail)
    console.print(table)
    timings = ", ".join(f"{k} {val:.1f}s" for k, val in report.timings.items())
    infra = report.infrastructure
    console.print(
        f"infrastructure errors: {infra.get('errors_seen', 0)} seen, "
        f"{infra.get('retried', 0)} retried (budget {infra.get('retry_budget', '-')})"
    )
    console.print(f"{verdict_of(report)}  ({timings})")


def exit_code(report: Report) -> int:
    if report.infrastructure.get("budget_spent"):
        return EXIT_RETRY_BUDGET_SPENT
    return EXIT_PASSED if report.passed else EXIT_PRODUCT_FAILURE


def verdict_of(report: Report) -> str:
    code = exit_code(report)
    if code == EXIT_RETRY_BUDGET_SPENT:
        return (
            "[yellow]NOT JUDGED: the infrastructure's retry budget was spent "
            "(errors between the scenario and the cluster, not a product failure)[/]"
        )
    if code == EXIT_PRODUCT_FAILURE:
        return "[red]FAILED: a product failure (see the validations above)[/]"
    return "[green]all validations passed[/]"


def run(
    *,
    name: str,
    provider: str,
    kubeconfig: Path,
    json_report: Path | None,
    namespace: str,
    tenant: TenantAccess | None = None,
) -> int:
    """Exit code 0 only if every validation passed; 1 for a product failure; 2 if the scenario
    could not start; 3 if the infrastructure's retry budget was spent. With `tenant`, the
    instance is ordered and deleted through the fulfillment API as that tenant."""
    console = Console()
    scenario_fn = SCENARIOS.get(name)
    if scenario_fn is None:
        console.print(f"[red]unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
        return EXIT_COULD_NOT_RUN
    if tenant is not None and name not in THROUGH_THE_API:
        console.print(f"[red]--via fulfillment: only {', '.join(THROUGH_THE_API)}, not {name}")
        return EXIT_COULD_NOT_RUN
    scn = Scenario(
        kubeconfig=str(kubeconfig),
        namespace=namespace,
        provider=provider,
        orders=Orders(tenant) if tenant is not None else None,
    )
    try:
        report = scenario_fn(scn)
    except (ScenarioError, RetryBudgetSpent) as exc:
        console.print(f"[red]scenario {name} could not complete: {exc}")
        report = Report(name, provider, f"{namespace}/{scn.name}", via=scn.via)
        report.add("scenario-completed", False, str(exc))
    report.infrastructure = scn.infrastructure.to_json()
    render(report, console)
    if json_report is not None:
        json_report.parent.mkdir(parents=True, exist_ok=True)
        json_report.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return exit_code(report)
