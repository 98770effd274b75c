"""Unmodified kubectl against the local API server (discovery, OpenAPI v3, Table, watch)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD
from tests.waiting import until_sync

pytestmark = pytest.mark.stack

WIDGET = """
apiVersion: test.cloudkit.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3, zone: a}
"""


def test_kubectl_crd_lifecycle(apiserver: ApiServerHandle, kubectl, kube_cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("apply", "-f", str(WIDGETS_CRD), check=True).stdout
    assert "created" in out
    kubectl(
        "wait",
        "--for=condition=established",
        "crd/widgets.test.cloudkit.dev",
        "--timeout=10s",
        check=True,
    )
    assert "created" in kubectl("apply", "-f", "-", input=WIDGET, check=True).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", input=WIDGET, check=True).stdout
    table = kubectl("get", "widgets", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert table[1].split()[:2] == ["w1", "3"]

    watch = subprocess.Popen(
        [
            str(Path(__import__("sys").executable).parent / "kubectl"),
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "--cache-dir",
            str(kube_cache_dir),
            "get",
            "widgets",
            "-w",
            "--request-timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        assert first.split()[0] == "NAME"
        kubectl("patch", "widget", "w1", "--type", "merge", "-p", '{"spec":{"size":7}}', check=True)
        stdout = watch.stdout
        until_sync(
            stdout.readline,
            lambda line: line.split()[:2] == ["w1", "7"],
            within=10,
            what="the watch printing w1 at size 7",
            interval=0,
        )
    finally:
        watch.terminate()
        watch.wait(5)

    kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        '{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True"}]}}',
        check=True,
    )
    kubectl("wait", "--for=condition=Ready", "widget/w1", "--timeout=10s", check=True)
    assert kubectl("get", "widget", "w1", check=True).stdout.splitlines()[1].split()[2] == "Ready"

    bad = kubectl("apply", "-f", "-", input=WIDGET.replace("name: w1", "name: Bad_Name"))
    assert bad.returncode != 0 and "metadata.name" in bad.stderr

    smp = kubectl("patch", "widget", "w1", "-p", '{"spec":{"size":2}}')
    assert smp.returncode != 0

    kubectl("delete", "widget", "w1", "--wait", "--timeout=10s", check=True)
    assert "NotFound" in kubectl("get", "widget", "w1").stderr


def test_kubectl_builtins(kubectl) -> None:  # type: ignore[no-untyped-def]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: b}\n"
    assert "created" in kubectl("apply", "-f", "-", input=cm, check=True).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", input=cm, check=True).stdout
    assert (
        "configured"
        in kubectl("apply", "-f", "-", input=cm.replace("a: b", "a: c"), check=True).stdout
    )
    kubectl("label", "configmap", "c1", "tier=x", check=True)
    assert "c1" in kubectl("get", "cm", "-l", "tier=x", check=True).stdout
    kubectl("create", "namespace", "team", check=False)
    out = kubectl("get", "ns", check=True).stdout
    assert "kube-system" in out and "Active" in out
    kubectl("delete", "configmap", "c1", check=True)
    assert "c1" not in kubectl("get", "cm").stdout


def test_kubectl_typed_create_commands(kubectl) -> None:  # type: ignore[no-untyped-def]
    """`kubectl create configmap|secret|namespace` POST protobuf bodies."""
    kubectl("create", "configmap", "c1", "--from-literal=a=b", check=True)
    kubectl("create", "secret", "generic", "s1", "--from-literal=pw=x", check=True)
    kubectl("create", "namespace", "team", check=True)
    assert kubectl("get", "cm", "c1", "-o", "jsonpath={.data.a}", check=True).stdout == "b"
    secret = kubectl("get", "secret", "s1", "-o", "jsonpath={.data.pw} {.type}", check=True).stdout
    assert secret == "eA== Opaque"
    assert "Active" in kubectl("get", "ns", "team", check=True).stdout
    kubectl("delete", "namespace", "team", "--timeout=10s", check=True)
    assert "NotFound" in kubectl("get", "ns", "team").stderr


def test_session_server_answers_kubectl(kubectl_session) -> None:  # type: ignore[no-untyped-def]
    out = kubectl_session("version", "-o", "json", check=True).stdout
    assert '"gitVersion": "v1.33' in out
