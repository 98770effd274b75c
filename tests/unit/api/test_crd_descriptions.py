"""`kubectl explain` has something to say about every field of the ComputeInstance CRD.

The descriptions come from the models' docstrings; a field added without one fails here
(kubectl would print `<no description>` for it). `metadata` is the exception: kube-apiserver
accepts nothing but its type in a CRD and serves ObjectMeta's own descriptions for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cloudkit.api.crd import openapi_schema
from cloudkit.api.models import ComputeInstanceSpec

COMMITTED = (
    Path(__file__).resolve().parents[3]
    / "deploy"
    / "crds"
    / "cloudkit.openshift.io_computeinstances.yaml"
)


def undescribed(node: dict[str, Any], path: str = "") -> list[str]:
    """Paths (as kubectl explain spells them) of every schema node without a description."""
    missing = [] if node.get("description", "").strip() else [path or "<root>"]
    for name, child in node.get("properties", {}).items():
        if not (path == "" and name == "metadata"):
            missing += undescribed(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            missing += undescribed(node[key], path)
    return missing


def test_every_field_of_the_generated_schema_is_described() -> None:
    assert undescribed(openapi_schema()) == []


def test_every_field_of_the_committed_crd_is_described() -> None:
    crd = yaml.safe_load(COMMITTED.read_text())
    (version,) = crd["spec"]["versions"]
    assert undescribed(version["schema"]["openAPIV3Schema"]) == []


def test_descriptions_are_the_models_docstrings() -> None:
    spec = openapi_schema()["properties"]["spec"]
    assert spec["description"] == ComputeInstanceSpec.__doc__
    image = spec["properties"]["image"]
    assert image["description"] == ComputeInstanceSpec.model_fields["image"].description
