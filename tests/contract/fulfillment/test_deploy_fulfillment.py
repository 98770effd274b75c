"""deploy/fulfillment and charts/cloudkit-fulfillment apply to the local API server (server dry
run), hold the same objects, and take PostgreSQL's URL from a Secret, never from the manifests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

pytestmark = pytest.mark.stack
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "fulfillment"
CHART = ROOT / "charts" / "cloudkit-fulfillment"
NAMESPACE = "cloudkit-fulfillment-system"
URL_VARIABLE = "CLOUDKIT_FULFILLMENT_DATABASE_URL"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="cloudkit", namespace=NAMESPACE)
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]


def kustomize(kubectl: Kubectl) -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all(kubectl("kustomize", str(DEPLOY), check=True).stdout) if d
    ]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(api)


def test_the_manifests_apply_and_the_chart_holds_the_same_objects(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), check=True)
    dry = kubectl("apply", "--dry-run=server", "-k", str(DEPLOY), check=True).stdout
    for kind in ("serviceaccount", "clusterrole.rbac.authorization.k8s.io",
                 "clusterrolebinding.rbac.authorization.k8s.io", "deployment.apps",
                 "service"):  # fmt: skip
        assert f"{kind}/cloudkit-fulfillment" in dry, dry
    assert all(line.endswith("(server dry run)") for line in dry.splitlines())

    values = {"auth": {"issuers": ["https://sso.example.com/realms/a"], "audience": "osac-api"}}
    chart = render(values)
    manifest = yaml.safe_dump_all(chart)
    dry = kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=True).stdout
    assert all(line.endswith("(server dry run)") for line in dry.splitlines()), dry

    def keys(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] != "Namespace"}

    built = kustomize(kubectl)
    assert keys(render()) == keys(built)
    # With the default values, the chart runs the service as the kustomize base does.
    assert container(render())["args"] == container(built)["args"]
    assert "--issuer=https://sso.example.com/realms/a" in container(chart)["args"]


@pytest.mark.parametrize("source", ["kustomize", "helm"])
def test_the_database_url_comes_from_a_secret(kubectl: Kubectl, source: str) -> None:
    docs = kustomize(kubectl) if source == "kustomize" else render()
    api = container(docs)
    assert f"--db=$({URL_VARIABLE})" in api["args"]
    (variable,) = [e for e in api["env"] if e["name"] == URL_VARIABLE]
    assert set(variable) == {"name", "valueFrom"}
    assert variable["valueFrom"]["secretKeyRef"] == {
        "name": "cloudkit-fulfillment-database",
        "key": "url",
    }
    assert "postgresql://" not in yaml.safe_dump_all(docs)
