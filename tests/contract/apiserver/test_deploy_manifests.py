"""deploy/operator and its overlays (deploy/overlays/aap, eda) apply to the local API server with
kubectl -k (server dry run first), and the operator's ServiceAccount may do what the operator
needs and nothing of a table of what it must not."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cloudkit.local.kubevirt.crd import vm_crd_manifest, vmi_crd_manifest

pytestmark = pytest.mark.stack
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]

DEPLOY = Path(__file__).parents[3] / "deploy" / "operator"
OVERLAYS = DEPLOY.parent / "overlays"
SA = "system:serviceaccount:cloudkit-operator-system:cloudkit-operator-controller-manager"
CI = "computeinstances.cloudkit.openshift.io"
WORK_NS = "cloudkit-computeinstance"
OWN_NS = "cloudkit-operator-system"

# What the operator does, each in the namespace where it does it.
MAY = [
    ("watch", CI, WORK_NS),
    ("patch", CI, WORK_NS),  # finalizers
    ("update", f"{CI}/status", WORK_NS),
    ("watch", "virtualmachines.kubevirt.io", WORK_NS),
    ("delete", "virtualmachineinstances.kubevirt.io", WORK_NS),
    ("create", "events", WORK_NS),
    ("update", "leases.coordination.k8s.io", OWN_NS),
]
# What it must not: the table a security review asks for.
MAY_NOT = [
    ("create", CI, WORK_NS),  # users create them; the operator only reconciles
    ("delete", CI, WORK_NS),  # deletion is the user's; the operator removes its finalizer
    ("update", CI, WORK_NS),  # the finalizer goes by patch
    ("patch", f"{CI}/status", WORK_NS),  # the status goes by update
    ("delete", "virtualmachines.kubevirt.io", WORK_NS),  # it deletes VMIs to restart, never VMs
    ("create", "virtualmachines.kubevirt.io", WORK_NS),  # the playbooks create VMs, not it
    ("get", "secrets", WORK_NS),
    ("get", "secrets", OWN_NS),
    ("list", "configmaps", WORK_NS),
    ("create", "pods", WORK_NS),
    ("create", "serviceaccounts/token", OWN_NS),
    ("update", "leases.coordination.k8s.io", WORK_NS),  # the Lease lives in its own namespace
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("delete", "namespaces", ""),
    ("watch", "namespaces", ""),  # kopf runs cluster-wide: it never needs them
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("impersonate", "users", ""),
]


def test_apply_dry_run_then_for_real(kubectl: Kubectl) -> None:
    # As on a real cluster, a dry run cannot create into namespaces that do not exist yet.
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), check=True)
    dry = kubectl("apply", "--dry-run=server", "-k", str(DEPLOY), check=True).stdout
    for kind in ("serviceaccount", "clusterrole.rbac.authorization.k8s.io",
                 "rolebinding.rbac.authorization.k8s.io", "deployment.apps"):  # fmt: skip
        assert f"{kind}/" in dry
    assert all(line.endswith("(server dry run)") for line in dry.splitlines())
    nothing = kubectl("get", "deployments,serviceaccounts,clusterroles", "-A", "-o", "name")
    assert nothing.stdout.strip() == ""

    applied = kubectl("apply", "-k", str(DEPLOY), check=True).stdout
    assert "deployment.apps/cloudkit-operator-controller-manager created" in applied
    again = kubectl("apply", "-k", str(DEPLOY), check=True).stdout
    assert "deployment.apps/cloudkit-operator-controller-manager unchanged" in again

    # kubectl resolves `virtualmachines.kubevirt.io` through discovery: the CRDs must be served.
    crds = yaml.safe_dump_all([vm_crd_manifest(), vmi_crd_manifest()])
    kubectl("apply", "-f", "-", input=crds, check=True)

    def can(verb: str, resource: str, namespace: str) -> str:
        scope = ["-n", namespace] if namespace else []
        # `kubectl auth can-i VERB RESOURCE/X` reads X as a name: a subresource is a flag.
        resource, _, sub = resource.partition("/")
        sub_flag = [f"--subresource={sub}"] if sub else []
        return kubectl(
            "auth", "can-i", verb, resource, *sub_flag, *scope, f"--as={SA}"
        ).stdout.strip()

    assert [(*row, can(*row)) for row in MAY] == [(*row, "yes") for row in MAY]
    assert [(*row, can(*row)) for row in MAY_NOT] == [(*row, "no") for row in MAY_NOT]


def test_both_overlays_apply(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), check=True)
    deployment = ["deployment", "cloudkit-operator-controller-manager", "-n", OWN_NS]
    for provider in ("aap", "eda"):
        overlay = str(OVERLAYS / provider)
        dry = kubectl("apply", "--dry-run=server", "-k", overlay, check=True).stdout
        assert "deployment.apps/cloudkit-operator-controller-manager" in dry
        kubectl("apply", "-k", overlay, check=True)
        env = json.loads(kubectl("get", *deployment, "-o", "json", check=True).stdout)
        (manager,) = env["spec"]["template"]["spec"]["containers"]
        values = {e["name"]: e.get("value") for e in manager["env"]}
        assert values["CLOUDKIT_PROVISIONING_PROVIDER"] == provider
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in manager["env"]
                if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
        if provider == "eda":
            assert refs["CLOUDKIT_EDA_WEBHOOK_TOKEN"] == "cloudkit-operator-eda"
        else:
            assert refs["CLOUDKIT_AAP_TOKEN"] == "cloudkit-operator-aap"
