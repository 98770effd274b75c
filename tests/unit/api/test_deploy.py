"""deploy/: the kustomization lists files that exist; the Deployment is what the e2e test reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
OPERATOR = ROOT / "deploy" / "operator"


def _documents(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += _documents(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_deployment_names_the_provider_in_its_first_container() -> None:
    (deployment,) = [d for d in _documents(OPERATOR) if d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "cloudkit-operator-controller-manager"
    first = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in first["env"]}
    assert env["CLOUDKIT_PROVISIONING_PROVIDER"] in ("aap", "eda")


def test_rbac_covers_what_the_operator_touches() -> None:
    docs = _documents(OPERATOR)
    granted = {
        (group, resource)
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        for rule in d["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for needed in [
        ("cloudkit.openshift.io", "computeinstances"),
        ("cloudkit.openshift.io", "computeinstances/status"),
        ("kubevirt.io", "virtualmachines"),
        ("", "events"),
        ("coordination.k8s.io", "leases"),
    ]:
        assert needed in granted, needed


def test_rbac_lets_the_operator_read_and_restart_vm_instances() -> None:
    """VMIs are watched (wake-ups), read (creation time, address) and deleted (restarts)."""
    verbs = {
        verb
        for d in _documents(OPERATOR)
        if d["kind"] in ("ClusterRole", "Role")
        for rule in d["rules"]
        if "kubevirt.io" in rule["apiGroups"] and "virtualmachineinstances" in rule["resources"]
        for verb in rule["verbs"]
    }
    assert {"get", "list", "watch", "delete"} <= verbs


def test_the_crd_is_part_of_the_kustomization() -> None:
    kinds = [d["kind"] for d in _documents(OPERATOR)]
    assert "CustomResourceDefinition" in kinds


def test_two_replicas_one_leader_with_probes_spread_and_a_disruption_budget() -> None:
    docs = _documents(OPERATOR)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    (manager,) = pod["containers"]
    env = {e["name"]: e for e in manager["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "CLOUDKIT_LEADER_ELECTION" not in env, "on by default: nothing to set"
    health_port = int(env["CLOUDKIT_HEALTH_ADDRESS"]["value"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in manager["ports"]}
    assert ports["health"] == health_port
    assert manager["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert manager["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = spec["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
