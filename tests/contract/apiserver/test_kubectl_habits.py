"""kubectl habits that must work as on kube-apiserver: applying what `kubectl get -o yaml`
wrote (a `kind: List`), and server-side apply between field managers (managedFields,
conflicts, --force-conflicts)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD
from tests.harness.kube_clients import api_client, filled, json_object

pytestmark = pytest.mark.stack
APPLY = "application/apply-patch+yaml"
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]
WIDGET = """apiVersion: test.cloudkit.dev/v1
kind: Widget
metadata: {name: NAME}
spec: {size: 2, zone: a}
"""


def _widgets(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(WIDGETS_CRD), check=True)
    kubectl("wait", "--for=condition=established", "crd/widgets.test.cloudkit.dev", check=True)


def test_apply_what_get_o_yaml_wrote(kubectl: Kubectl, tmp_path: Path) -> None:
    _widgets(kubectl)
    for name in ("w1", "w2"):
        kubectl("apply", "-f", "-", input=WIDGET.replace("NAME", name), check=True)
    kubectl("create", "configmap", "c1", "--from-literal=a=b", check=True)
    for kind in ("widgets", "configmaps"):
        saved = tmp_path / f"{kind}.yaml"
        saved.write_text(kubectl("get", kind, "-o", "yaml", check=True).stdout)
        assert yaml.safe_load(saved.read_text())["kind"] == "List"
        applied = kubectl("apply", "-f", str(saved))
        assert applied.returncode == 0, applied.stderr  # was: "error validating data"

    # The items are still validated, by the server (kubectl sends fieldValidation=Strict).
    edited = yaml.safe_load(kubectl("get", "widgets", "-o", "yaml", check=True).stdout)
    edited["items"][0]["spec"]["size"] = 5
    edited["items"][1]["spec"]["colour"] = "red"
    refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(edited))
    assert refused.returncode != 0
    assert 'unknown field "spec.colour"' in refused.stderr
    assert kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.size}").stdout == "5"


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    shown = kubectl("get", "widget", name, "-o", "json", "--show-managed-fields", check=True)
    return dict(json.loads(shown.stdout))


def _owners(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


def _ssa(kubectl: Kubectl, manager: str, doc: str, *flags: str) -> Any:
    return kubectl("apply", "--server-side", f"--field-manager={manager}", *flags, "-f", "-",
                   input=doc)  # fmt: skip


def test_server_side_apply_between_field_managers(kubectl: Kubectl) -> None:
    _widgets(kubectl)
    mine = WIDGET.replace("NAME", "w1").replace("{name: w1}", "{name: w1, labels: {owner: a}}")
    assert _ssa(kubectl, "team/a", mine).returncode == 0
    owners = _owners(_get(kubectl, "w1"))
    assert owners[("team/a", "Apply")] == {
        "f:metadata": {"f:labels": {"f:owner": {}}},
        "f:spec": {"f:size": {}, "f:zone": {}},
    }

    # Another manager may not change what team/a applied: 409, naming the field and owner.
    theirs = WIDGET.replace("NAME", "w1").replace("size: 2", "size: 3")
    refused = _ssa(kubectl, "team/b", theirs)
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "team/a": .spec.size' in refused.stderr
    assert _get(kubectl, "w1")["spec"]["size"] == 2

    # The same value is no conflict: both own it. --force-conflicts takes the field.
    assert _ssa(kubectl, "team/b", WIDGET.replace("NAME", "w1")).returncode == 0
    assert _ssa(kubectl, "team/b", theirs, "--force-conflicts").returncode == 0
    obj = _get(kubectl, "w1")
    assert obj["spec"]["size"] == 3
    owners = _owners(obj)
    assert "f:size" not in owners[("team/a", "Apply")]["f:spec"]
    assert owners[("team/b", "Apply")]["f:spec"] == {"f:size": {}, "f:zone": {}}

    # An Update by another manager (kubectl label) is recorded, and team/a's next apply
    # drops the label it stopped applying (nobody else owns it).
    kubectl("label", "widget", "w1", "tier=gold", check=True)
    assert _owners(_get(kubectl, "w1"))[("kubectl-label", "Update")] == {
        "f:metadata": {"f:labels": {"f:tier": {}}}
    }
    # (With the size team/b set: applying 2 again would now conflict with team/b.)
    assert "team/b" in _ssa(kubectl, "team/a", WIDGET.replace("NAME", "w1")).stderr
    assert _ssa(kubectl, "team/a", theirs).returncode == 0
    assert _get(kubectl, "w1")["metadata"]["labels"] == {"tier": "gold"}


def test_apply_conflicts_through_the_python_client(
    apiserver: ApiServerHandle, kubectl: Kubectl
) -> None:
    _widgets(kubectl)
    with api_client(apiserver.kubeconfig) as api:
        objects = client.CustomObjectsApi(api)
        args = ("test.cloudkit.dev", "v1", "default", "widgets", "w1")
        body = yaml.safe_load(WIDGET.replace("NAME", "w1"))
        objects.patch_namespaced_custom_object(*args, body, field_manager="ops/a",
                                               _content_type=APPLY)  # fmt: skip
        # A merge patch without a fieldManager: an Update by the client's User-Agent product.
        objects.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"tier": "b"}}})
        got = json_object(objects.get_namespaced_custom_object(*args))
        updates = [e for e in got["metadata"]["managedFields"] if e["operation"] == "Update"]
        assert [(e["manager"], e["fieldsV1"]) for e in updates] == [
            ("OpenAPI-Generator", {"f:metadata": {"f:labels": {"f:tier": {}}}})
        ]
        relabel = {**body, "metadata": {"name": "w1", "labels": {"tier": "c"}}}
        with pytest.raises(ApiException) as conflict:
            objects.patch_namespaced_custom_object(
                *args, relabel, field_manager="ops/a", _content_type=APPLY
            )
        assert conflict.value.status == 409
        status = json.loads(filled(conflict.value.body, "the 409's body"))
        assert status["reason"] == "Conflict"
        (cause,) = status["details"]["causes"]
        assert cause["reason"] == "FieldManagerConflict"
        assert cause["field"] == ".metadata.labels.tier"
        assert cause["message"].startswith(
            'conflict with "OpenAPI-Generator" using test.cloudkit.dev/v1 at '
        )
        objects.patch_namespaced_custom_object(
            *args, relabel, field_manager="ops/a", force=True, _content_type=APPLY
        )
        relabelled = json_object(objects.get_namespaced_custom_object(*args))
        assert relabelled["metadata"]["labels"] == {"tier": "c"}
