"""charts/cloudkit-operator, rendered by Helm's own engine (the Go SDK, through helm-python-sdk),
holds what `kubectl kustomize` builds from deploy/overlays/aap and eda: the same kinds, names,
rules, bindings and Deployment, the env from values. Every variable the operator reads is a
value, and the render applies to the local API server (`kubectl apply --dry-run=server`).

Allowed differences: Helm's release labels on top of kustomize's; no Namespace object for the
release's own namespace (`helm install --create-namespace` makes it); with EDA, no references
to the AAP Secret (the eda overlay keeps its base's, which the operator does not read then).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.unit.docs.code_facts import variables_read_by_operator

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.stack
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]

CHART = ROOT / "charts" / "cloudkit-operator"
OVERLAYS = ROOT / "deploy" / "overlays"
CRD = ROOT / "deploy" / "crds" / "cloudkit.openshift.io_computeinstances.yaml"
RELEASE_NAMESPACE = "cloudkit-operator-system"
Key = tuple[str, str, str]


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="cloudkit", namespace=RELEASE_NAMESPACE)
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]


def kustomize(kubectl: Kubectl, overlay: str) -> list[dict[str, Any]]:
    built = kubectl("kustomize", str(OVERLAYS / overlay), check=True).stdout
    return [d for d in yaml.safe_load_all(built) if d]


def key(doc: dict[str, Any]) -> Key:
    meta = doc["metadata"]
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def comparable(doc: dict[str, Any], skip_secret: str = "") -> dict[str, Any]:
    """The object without labels, the Deployment's env as a name → source mapping (without the
    variables read from `skip_secret`)."""
    doc = yaml.safe_load(yaml.safe_dump(doc))
    doc["metadata"].pop("labels", None)
    if doc["kind"] == "Deployment":
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = container.pop("env", [])
            container["env"] = {
                e["name"]: e.get("value", e.get("valueFrom"))
                for e in env
                if not skip_secret
                or (e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name") != skip_secret
            }
    return doc


def by_key(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {key(d): d for d in docs}


def deployment_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return dict(comparable(deployment)["spec"]["template"]["spec"]["containers"][0]["env"])


@pytest.mark.parametrize(
    ("overlay", "values"),
    [("aap", None), ("eda", {"env": {"CLOUDKIT_PROVISIONING_PROVIDER": "eda"}})],
)
def test_the_chart_holds_what_kustomize_builds(
    kubectl: Kubectl, overlay: str, values: dict[str, Any] | None
) -> None:
    built = by_key(kustomize(kubectl, overlay))
    del built[("Namespace", "", RELEASE_NAMESPACE)]  # the release's namespace
    (crd_key,) = [k for k in built if k[0] == "CustomResourceDefinition"]
    del built[crd_key]  # from crds/, which Helm installs before the templates
    charted = by_key(render(values))
    assert sorted(charted) == sorted(built)
    unread = "cloudkit-operator-aap" if overlay == "eda" else ""
    for k, doc in built.items():
        assert comparable(charted[k]) == comparable(doc, unread), k
        labels = doc["metadata"].get("labels") or {}
        assert labels.items() <= (charted[k]["metadata"].get("labels") or {}).items(), k


def test_the_chart_crd_is_the_generated_one() -> None:
    assert (CHART / "crds" / CRD.name).read_text() == CRD.read_text()
    assert [p.name for p in (CHART / "crds").iterdir()] == [CRD.name]


def test_every_operator_variable_is_a_value_and_reaches_the_container() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["env"]
    assert set(defaults) == variables_read_by_operator()
    chosen = {name: f"value-of-{name.lower()}" for name in defaults}
    env = deployment_env(render({"env": chosen}))
    # The Lease identity comes from the downward API, not from values.
    assert env.pop("POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env == chosen  # set in values: a plain value, even where a Secret is the default


def test_the_render_applies_to_the_api_server(kubectl: Kubectl, tmp_path: Path) -> None:
    # As `helm install --create-namespace`: the release namespace exists first.
    kubectl("create", "namespace", RELEASE_NAMESPACE, check=True)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all([yaml.safe_load(CRD.read_text()), *render()]))
    dry = kubectl("apply", "--dry-run=server", "-f", str(rendered), check=True).stdout
    lines = dry.splitlines()
    assert len(lines) == 1 + len(render()) and all(
        line.endswith("(server dry run)") for line in lines
    ), dry
    assert "deployment.apps/cloudkit-operator-controller-manager created" in dry
    nothing = kubectl("get", "deployments,serviceaccounts,clusterroles", "-A", "-o", "name")
    assert nothing.stdout.strip() == ""
