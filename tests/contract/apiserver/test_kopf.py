"""kopf (as a real subprocess) runs its handlers, finalizer and status patches against us."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD
from tests.waiting import until_sync

pytestmark = pytest.mark.stack
OPERATOR = Path(__file__).with_name("kopf_widget_operator.py")
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


# A deadline, not an expectation: kopf alone takes ~20 s to import and start on a loaded
# 2-core machine, and the handlers run only after that.
HANDLERS_WITHIN_S = 120.0


def _install_crd(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(WIDGETS_CRD), check=True)
    kubectl("wait", "--for=condition=established", "crd/widgets.test.cloudkit.dev", check=True)


# crd_first=False: kopf starts while the group does not exist and must pick the CRD up from
# its CRD watch (discovery has to be updated before that event goes out).
@pytest.mark.parametrize("crd_first", [True, False])
def test_kopf_operator_handlers(  # type: ignore[no-untyped-def]
    apiserver: ApiServerHandle, kubectl, tmp_path: Path, crd_first: bool
) -> None:
    if crd_first:
        _install_crd(kubectl)
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)}
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "kopf"),
                "run",
                "--standalone",
                "--namespace",
                "default",
                "--verbose",
                str(OPERATOR),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        if not crd_first:
            # kopf has scanned discovery (before the group exists) once startup ran
            until_sync(
                lambda: "Activity 'configure' succeeded" in log_path.read_text(),
                bool,
                within=HANDLERS_WITHIN_S,
                what="startup",
                interval=0.1,
            )
            _install_crd(kubectl)

        def get(path: str) -> str:
            return str(kubectl("get", "widget", "w1", "-o", f"jsonpath={path}").stdout)

        kubectl(
            "apply",
            "-f",
            "-",
            input="apiVersion: test.cloudkit.dev/v1\nkind: Widget\n"
            "metadata: {name: w1}\nspec: {size: 1, zone: a}\n",
            check=True,
        )
        until_sync(
            lambda: get("{.status.phase}"),
            lambda phase: phase == "Created-1",
            within=HANDLERS_WITHIN_S,
            what="the create handler",
            interval=0.1,
        )
        assert FINALIZER in get("{.metadata.finalizers}")
        kubectl("patch", "widget", "w1", "--type", "merge", "-p", '{"spec":{"size":2}}', check=True)
        until_sync(
            lambda: get("{.status.phase}"),
            lambda phase: phase == "Updated-2",
            within=HANDLERS_WITHIN_S,
            what="the update handler",
            interval=0.1,
        )
        kubectl("delete", "widget", "w1", "--timeout=20s", check=True)
        assert "NotFound" in kubectl("get", "widget", "w1").stderr
        text = log_path.read_text()
        for handler in ("HANDLER create", "HANDLER update", "HANDLER delete"):
            assert handler in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        operator.terminate()
        try:
            operator.wait(10)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
