"""The tenant's `cloudkit` commands against the real service: login with a token or a token
script, errors rendered once with the field named, kubectl's exit codes, output formats, and
a watch that lists again after the service went away."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from cloudkit.local.stack.ports import free_port
from tests.harness.fulfillment import FulfillmentService, Issuer

# Each step is a new `cloudkit` process: slow on a busy machine.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

CLOUDKIT = Path(sys.executable).parent / "cloudkit"
STEP_TIMEOUT_S = 120.0


class Shell:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.env = {**os.environ, "CLOUDKIT_CONFIG": str(config)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLOUDKIT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"cloudkit {' '.join(args)}: {done.stderr}"
        return done.stdout

    def login_with_token(self, service: FulfillmentService, tenant: str) -> None:
        """With a token, as a script would: one process per command (a token script is a
        second process per command, proven by the test of every format)."""
        self.ok(
            "login",
            "--address",
            service.url,
            "--token",
            service.token(tenant),
            "--ca-file",
            str(service.ca_file),
        )

    def login(self, service: FulfillmentService, tenant: str) -> None:
        """With a token script, as a person with an SSO helper would."""
        script = f"{CLOUDKIT} token --tenant {tenant} --state-dir {service.issuer.directory.parent}"
        self.ok(
            "login",
            "--address",
            service.url,
            "--token-script",
            script,
            "--ca-file",
            str(service.ca_file),
        )


def _tenant(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


def test_create_list_describe_delete_in_every_format(
    service: FulfillmentService, tmp_path: Path
) -> None:
    shell = Shell(tmp_path / "config.json")
    shell.login(service, _tenant("acme"))
    assert shell.config.stat().st_mode & 0o777 == 0o600
    created = json.loads(
        shell.ok(
            "create",
            "computeinstance",
            "--name",
            "web",
            "--template",
            "small",
            "-p",
            "cores=2",
            "--run-strategy",
            "Halted",
            "-o",
            "json",
        )
    )
    id = created["id"]
    assert created["spec"]["run_strategy"] == "Halted"
    assert json.loads(shell.ok("get", "computeinstances", "-o", "json"))["items"][0]["id"] == id
    assert yaml.safe_load(shell.ok("get", "computeinstances", id, "-o", "yaml"))["id"] == id
    table = shell.ok("get", "computeinstances").splitlines()
    assert table[0].split() == ["ID", "NAME", "TEMPLATE", "STATE", "IP", "AGE"]
    assert table[1].split()[:4] == [id, "web", "small", "UNSPECIFIED"]
    described = shell.ok("describe", "computeinstance", id)
    assert (
        'Template parameters:\n  cores: "2"' in described
        and "Run strategy:         Halted" in described
    )
    assert shell.ok("delete", "computeinstance", id).strip() == f'computeinstance "{id}" deleted'


def test_errors_name_the_field_once_and_exit_as_kubectl(
    service: FulfillmentService, tmp_path: Path
) -> None:
    shell = Shell(tmp_path / "config.json")
    shell.login_with_token(service, _tenant("acme"))
    bad = shell.run("create", "computeinstance", "--name", "Not_A_Label", "--template", "small")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("Error from server (Invalid): metadata.name: ")
    assert bad.stderr.count("metadata.name") == 1
    missing = shell.run("describe", "computeinstance", "no-such-id")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        == 'Error from server (NotFound): computeinstance "no-such-id" not found'
    )
    usage = shell.run(
        "create", "computeinstance", "--name", "a", "--template", "t", "-p", "novalue"
    )
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr
    broken = shell.run("get", "computeinstances", "--filter", "this.metadata.name ==")
    assert broken.returncode == 1 and broken.stderr.startswith("Error from server (BadRequest)")


def test_a_login_that_does_not_work_is_not_kept(
    service: FulfillmentService, tmp_path: Path
) -> None:
    shell = Shell(tmp_path / "config.json")
    # A forged signature on a token of the trusted issuer (checked by JWKS, not TokenReview).
    good = service.token(_tenant("acme"))
    forged = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    refused = shell.run(
        "login",
        "--address",
        service.url,
        "--token",
        forged,
        "--ca-file",
        str(service.ca_file),
    )
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr
    assert forged[-20:] not in refused.stderr and not shell.config.exists()
    listed = shell.run("get", "computeinstances")
    assert listed.returncode == 1 and "not logged in" in listed.stderr


def test_two_configs_are_two_tenants(service: FulfillmentService, tmp_path: Path) -> None:
    acme, globex = Shell(tmp_path / "acme.json"), Shell(tmp_path / "globex.json")
    acme.login_with_token(service, _tenant("acme"))
    globex.login_with_token(service, _tenant("globex"))
    id = json.loads(acme.ok("create", "ci", "--name", "web", "--template", "small", "-o", "json"))[
        "id"
    ]
    assert json.loads(globex.ok("get", "computeinstances", "-o", "json"))["items"] == []
    for args in (("get", "computeinstances", id), ("delete", "computeinstance", id)):
        done = globex.run(*args)
        assert done.returncode == 1 and "not found" in done.stderr
    assert id in acme.ok("get", "computeinstances")


class Watch:
    def __init__(self, shell: Shell) -> None:
        self.process = subprocess.Popen(
            [str(CLOUDKIT), "get", "computeinstances", "-w", "-o", "json"],
            env=shell.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, object]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    async def wait_for(self, type: str, id: str) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            try:
                event = json.loads(self.lines.get_nowait())
            except queue.Empty:
                assert self.process.poll() is None, "the watch exited"
                assert time.monotonic() < deadline, f"{type} {id} not seen in {self.seen}"
                await asyncio.sleep(0.1)
                continue
            self.seen.append(event)
            if event["type"] == type and event["compute_instance"]["id"] == id:
                return

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
async def own_service(
    tmp_path: Path, fulfillment_issuer: Issuer
) -> AsyncIterator[FulfillmentService]:
    """A service of this test's own on a fixed port, so a restart keeps its address."""
    running = FulfillmentService(
        tmp_path / "service", fulfillment_issuer, extra_args=("--port", str(free_port()))
    )
    await running.start()
    yield running
    running.stop()


async def test_the_watch_lists_again_after_the_service_went_away(
    own_service: FulfillmentService, tmp_path: Path
) -> None:
    shell = Shell(tmp_path / "config.json")
    shell.login_with_token(own_service, _tenant("acme"))
    watch = Watch(shell)
    try:
        first = json.loads(shell.ok("create", "ci", "--name", "a", "--template", "t", "-o", "json"))
        # LISTED if the watch listed after the create, CREATED if before: either way it is seen.
        await asyncio.wait_for(_seen(watch, first["id"]), STEP_TIMEOUT_S)
        listed_before = sum(1 for e in watch.seen if e["type"] == "LISTED")
        await own_service.restart()  # kill -9: the stream breaks mid-way
        await watch.wait_for("LISTED", first["id"])
        assert sum(1 for e in watch.seen if e["type"] == "LISTED") > listed_before
        second = json.loads(
            shell.ok("create", "ci", "--name", "b", "--template", "t", "-o", "json")
        )
        await asyncio.wait_for(_seen(watch, second["id"]), STEP_TIMEOUT_S)
    finally:
        watch.stop()


async def _seen(watch: Watch, id: str) -> None:
    while not any(e["compute_instance"]["id"] == id for e in watch.seen):  # type: ignore[index]
        try:
            watch.seen.append(json.loads(watch.lines.get_nowait()))
        except queue.Empty:
            await asyncio.sleep(0.1)
