"""CRD schema handling end to end (prune, default, validate, CEL) through the HTTP layer, and
a server that cannot import its schema engine refuses to start (fail closed, never open)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.apiserver.apiserver_client import WIDGETS, Api, widget

pytestmark = pytest.mark.stack
MERGE = "application/merge-patch+json"
LISTENING = "apiserver listening on"


async def test_prune_default_validate(api: Api) -> None:
    await api.install_widgets()
    created = await api.ok(
        "POST", WIDGETS, {**widget("w1"), "spec": {"size": 2, "zone": "a", "junk": 1}}
    )
    assert created["spec"] == {"size": 2, "zone": "a", "color": "red"}
    status, body, _ = await api.call(
        "POST", WIDGETS, {**widget("w2"), "spec": {"size": 99, "color": "green"}}
    )
    assert status == 422 and body["reason"] == "Invalid"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {"spec.size", "spec.color"} <= fields
    status, body, _ = await api.call("POST", WIDGETS, {**widget("w3"), "spec": {"zone": "a"}})
    assert status == 422 and body["details"]["causes"][0]["reason"] == "FieldValueRequired"


async def test_cel_immutability_rule(api: Api) -> None:
    await api.install_widgets()
    await api.ok("POST", WIDGETS, widget("w1"))
    status, body, _ = await api.call(
        "PATCH", WIDGETS + "/w1", {"spec": {"zone": "b"}}, content_type=MERGE
    )
    assert status == 422 and "zone is immutable" in body["message"]


async def test_field_validation_strict_and_warn(api: Api) -> None:
    await api.install_widgets()
    extra = {**widget("w1"), "spec": {"size": 1, "zone": "a", "junk": 1}}
    status, body, _ = await api.call("POST", WIDGETS, extra, params={"fieldValidation": "Strict"})
    assert status == 400 and 'unknown field "spec.junk"' in body["message"]
    status, _, headers = await api.call("POST", WIDGETS, extra, params={"fieldValidation": "Warn"})
    assert status == 201 and "spec.junk" in headers.get("Warning", "")


def start_cloudkit_apiserver(state_dir: Path, *, unimportable: str | None) -> subprocess.Popen[str]:
    """`cloudkit apiserver` in its own process; `unimportable`: a module made to fail its import
    there, as when its package is missing (a None in sys.modules halts the import)."""
    blocker = f"sys.modules[{unimportable!r}] = None; " if unimportable else ""
    code = (
        f"import sys; {blocker}"
        "sys.argv = ['cloudkit', 'apiserver', '--state-dir', sys.argv[1]]; "
        "from cloudkit.cli import main; main()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def first_line_or_exit(server: subprocess.Popen[str]) -> str:
    """The server's first line of output, or "" once it exited without one (no clock: the
    process either says where it listens or ends)."""
    assert server.stdout is not None
    return server.stdout.readline()


def test_the_server_this_test_starts_does_start(tmp_path: Path) -> None:
    """The control for the test below: the same command, nothing blocked, listens."""
    server = start_cloudkit_apiserver(tmp_path / "state", unimportable=None)
    try:
        assert first_line_or_exit(server).startswith(LISTENING)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


@pytest.mark.parametrize("module", ["cloudkit.local.apiserver.schema", "celpy"])
def test_without_its_schema_engine_the_server_refuses_to_start(tmp_path: Path, module: str) -> None:
    """The engine, or the CEL library it is built on, cannot be imported: the server exits with
    the import error instead of serving custom resources unvalidated."""
    state_dir = tmp_path / "state"
    server = start_cloudkit_apiserver(state_dir, unimportable=module)
    try:
        line = first_line_or_exit(server)
        assert not line.startswith(LISTENING), f"started without {module}: {line}"
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode != 0
    assert f"import of {module} halted" in stderr, stderr[-2000:]
    assert not (state_dir / "kubeconfig").exists()
