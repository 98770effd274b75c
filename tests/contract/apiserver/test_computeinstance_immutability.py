"""The generated ComputeInstance CRD served by the local API server: no immutable field can be
changed, not even in two steps (remove it, then set it anew), through HTTP or kubectl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api.crd import crd_manifest
from cloudkit.api.models import IMMUTABLE_SPEC_FIELDS
from tests.contract.apiserver.apiserver_client import Api

pytestmark = pytest.mark.stack

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
INSTANCES = "/apis/cloudkit.openshift.io/v1alpha1/namespaces/default/computeinstances"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": name},
        "spec": {
            "templateID": "cloudkit.templates.ocp_vm",
            "cores": 2,
            "memoryGiB": 4,
            "image": {"sourceType": "registry", "sourceRef": "quay.io/x/y:1"},
            "bootDisk": {"sizeGiB": 20},
            "additionalDisks": [{"sizeGiB": 5}],
        },
    }


def _names_the_field(body: dict[str, Any], field: str) -> None:
    assert body["code"] == 422 and body["reason"] == "Invalid", body
    assert f"{field} is immutable: it cannot be removed once set" in body["message"], body


async def test_immutable_fields_cannot_be_removed_over_http(api: Api) -> None:
    await api.ok("POST", CRDS, crd_manifest())
    created = await api.ok("POST", INSTANCES, _instance("vm1"))
    assert set(IMMUTABLE_SPEC_FIELDS) <= set(created["spec"]), "the fixture sets every one"
    for field in IMMUTABLE_SPEC_FIELDS:
        for content_type, patch in (
            (MERGE, {"spec": {field: None}}),
            (JSON_PATCH, [{"op": "remove", "path": f"/spec/{field}"}]),
        ):
            status, body, _ = await api.call(
                "PATCH", INSTANCES + "/vm1", patch, content_type=content_type
            )
            assert status == 422, (field, content_type, body)
            _names_the_field(body, field)
        without = json.loads(json.dumps(created))
        del without["spec"][field]
        status, body, _ = await api.call("PUT", INSTANCES + "/vm1", without)
        assert status == 422, (field, body)
        _names_the_field(body, field)
    after = await api.ok("GET", INSTANCES + "/vm1")
    assert after["spec"] == created["spec"]
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_kubectl_cannot_remove_an_immutable_field(kubectl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    crd = tmp_path / "crd.json"
    crd.write_text(json.dumps(crd_manifest()))
    kubectl("apply", "-f", str(crd), check=True)
    kubectl("create", "-f", "-", input=json.dumps(_instance("vm1")), check=True)
    for field in IMMUTABLE_SPEC_FIELDS:
        removal = json.dumps([{"op": "remove", "path": f"/spec/{field}"}])
        result = kubectl("patch", "ci", "vm1", "--type=json", "-p", removal)
        assert result.returncode != 0, (field, result.stdout)
        assert f"{field} is immutable: it cannot be removed once set" in result.stderr, (
            result.stderr
        )
        shown = kubectl("get", "ci", "vm1", "-o", "json", check=True)
        assert field in json.loads(shown.stdout)["spec"]
