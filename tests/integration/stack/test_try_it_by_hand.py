"""The README's "try it by hand", done by a test: up, apply the examples, watch, awx, explain.

One local stack (real API server, automation service, operator and VM simulator) serves the
whole walk; kubectl and the AWX CLI are the user's own tools, run as subprocesses with the
kubeconfig the stack publishes. An instance applied to another namespace must be reported.
The jobs are simulated (the playbooks' effects, VM sizes included, held to the playbooks by
tests/contract/playbooks): the walk is the subject, not Ansible, and three real provisions
cost more CPU than everything else here. The walk uses no fulfillment service: none is started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.console import StackConsole
from cloudkit.local.stack.strays import REASON
from tests.waiting import until

pytestmark = pytest.mark.stack

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DEADLINE_S = 90.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[StackHandle]:
    handle = await start_stack(
        provider="aap",
        state_dir=tmp_path / "state",
        vm_boot_seconds=0.5,
        simulated_jobs={"run_seconds": 0.5},
        with_fulfillment=False,
    )
    try:
        yield handle
    finally:
        await handle.stop()


async def run(*args: str, env: dict[str, str] | None = None) -> str:
    """A command's stdout; it must succeed. Asynchronous, so the in-process VM simulator and
    stray watcher keep running meanwhile."""
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, (args, err.decode())
    return out.decode()


async def kubectl(stack: StackHandle, *args: str) -> str:
    cache = str(stack.state_dir / "kube-cache")
    return await run(str(BIN / "kubectl"), "--cache-dir", cache, *args, env=kube_env(stack))


def kube_env(stack: StackHandle) -> dict[str, str]:
    return {"KUBECONFIG": str(stack.kubeconfig)}


async def eventually(check: Any, what: str) -> Any:
    return await until(check, bool, within=DEADLINE_S, what=what, interval=0.2)


async def test_try_it_by_hand(stack: StackHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cloudkit.local.stack")
    console = Console(record=True, width=240)
    StackConsole(console).ready(stack)
    panel = console.export_text()
    assert f"namespace {INSTANCE_NAMESPACE}" in panel and "kubectl get ci -w" in panel
    assert "awx jobs list" in panel and stack.automation_token not in panel

    context_namespace = await kubectl(
        stack, "config", "view", "--minify", "-o", "jsonpath={..namespace}"
    )
    assert context_namespace == INSTANCE_NAMESPACE

    # The examples carry no namespace: they land where the operator looks.
    await kubectl(stack, "apply", "-f", str(EXAMPLES))
    names = await kubectl(stack, "get", "ci", "-n", INSTANCE_NAMESPACE, "-o", "name")
    assert sorted(names.split()) == [
        f"computeinstance.cloudkit.openshift.io/{n}"
        for n in ("minimal", "sized", "with-parameters")
    ]

    # Elsewhere, an instance is reported (console and Event), never provisioned.
    await kubectl(stack, "create", "namespace", "elsewhere")
    await kubectl(stack, "apply", "-n", "elsewhere", "-f", str(EXAMPLES / "minimal.yaml"))

    async def not_watched_event() -> list[dict[str, Any]]:
        events = json.loads(await kubectl(stack, "get", "events", "-n", "elsewhere", "-o", "json"))
        return [e for e in events["items"] if e["reason"] == REASON]

    (event,) = await eventually(not_watched_event, "NotWatched event")
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "minimal"
    assert INSTANCE_NAMESPACE in event["message"]
    assert any("elsewhere/minimal" in r.getMessage() for r in caplog.records)

    # kubectl explain has words for fields that used to say <no description>.
    explained = await kubectl(stack, "explain", "ci.status.conditions")
    assert "<no description>" not in explained and "standard Kubernetes condition" in explained

    await kubectl(
        stack,
        "wait",
        "ci",
        "--all",
        "-n",
        INSTANCE_NAMESPACE,
        "--for=jsonpath={.status.phase}=Ready",
        f"--timeout={DEADLINE_S:.0f}s",
    )
    vms = json.loads(await kubectl(stack, "get", "vm", "-A", "-o", "json"))
    sizes = {
        vm["metadata"]["name"]: (
            vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"],
            vm["spec"]["template"]["spec"]["domain"]["memory"]["guest"],
        )
        for vm in vms["items"]
    }
    assert sizes == {"minimal": (1, "2Gi"), "sized": (2, "4Gi"), "with-parameters": (2, "3Gi")}
    elsewhere = json.loads(await kubectl(stack, "get", "ci", "-n", "elsewhere", "-o", "json"))
    assert [ci.get("status", {}).get("phase") for ci in elsewhere["items"]] == [None]

    # The provision jobs, as the AWX CLI shows them (the README's `awx jobs list`).
    awx_env = {
        "CONTROLLER_HOST": stack.automation_url.removesuffix("/api"),
        "CONTROLLER_OAUTH_TOKEN": stack.automation_token,
    }
    jobs = json.loads(await run(str(BIN / "awx"), "jobs", "list", "-f", "json", env=awx_env))
    assert [j["status"] for j in jobs["results"]] == ["successful"] * 3
