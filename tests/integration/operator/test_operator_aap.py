"""`cloudkit operator` with AAP direct on the local stack: create, delete, delete mid-provision,
a restart mid-provision, and bad settings at start. Every version of an instance is recorded from
a watch, so ordering claims (the provision job is terminal no later than the write that adds the
deprovision job) are checked on each write, not on lucky polls.

One stack for the module (`start_stack` through `tests.harness.operators`), its own operator the
one under test; its jobs are simulated (the playbooks' effects; the subject is the operator's
decisions), each instance's job as long as its annotation says."""

from __future__ import annotations

import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from cloudkit.api import names
from cloudkit.local.kubevirt.crd import VM_CRD_NAME, VMI_CRD_NAME, vm_crd_manifest
from cloudkit.local.stack.ports import free_port
from tests.harness import kube_clients
from tests.harness.operators import (
    AutomationService,
    Cluster,
    OperatorStack,
    assert_service_account,
    seconds,
    wait_until,
)
from tests.harness.stack_lab import DEPROVISION_TEMPLATE, NAMESPACE, PROVISION_TEMPLATE

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def cluster(stack: OperatorStack) -> Cluster:
    return stack.cluster


@pytest.fixture(scope="module")
def automation(stack: OperatorStack) -> AutomationService:
    return stack.automation


@pytest.fixture(scope="module")
def operator(stack: OperatorStack) -> OperatorStack:
    """The stack's own operator, healthy."""
    wait_until(stack.stack_operator_healthy, timeout=60, what="the stack's operator healthy")
    return stack


class Recorder:
    """Every version of one instance, from a watch on a background thread."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.versions: list[dict[str, Any]] = []
        self.deleted = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def _run(self) -> None:
        custom = self.cluster.custom
        listed = kube_clients.json_object(
            custom.list_namespaced_custom_object(
                names.GROUP, names.VERSION, NAMESPACE, names.PLURAL
            )
        )
        version = listed["metadata"]["resourceVersion"]
        self._ready.set()
        while not self._stop.is_set():
            watch = kube_clients.Watch()
            for event in watch.stream(
                custom.list_namespaced_custom_object,
                names.GROUP,
                names.VERSION,
                NAMESPACE,
                names.PLURAL,
                resource_version=version,
                timeout_seconds=2,
            ):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if obj["metadata"]["name"] != self.name:
                    continue
                if event["type"] == "DELETED":
                    self.deleted = True
                else:
                    self.versions.append(obj)
                if self._stop.is_set():
                    watch.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def record(cluster: Cluster) -> Iterator[Any]:
    recorders: list[Recorder] = []

    def start(name: str) -> Recorder:
        recorder = Recorder(cluster, name)
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.stop()


def status_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("status") or {}


def job(obj: dict[str, Any] | None, field: str) -> dict[str, Any]:
    return status_of(obj).get(field) or {}


def ready(cluster: Cluster, name: str) -> dict[str, Any] | None:
    obj = cluster.get(name)
    return obj if status_of(obj).get("phase") == "Ready" else None


def jobs_for(automation: AutomationService, name: str, template: str) -> list[dict[str, Any]]:
    return [
        j
        for j in automation.jobs()
        if j.get("name") == template and f'"name": "{name}"' in (j.get("extra_vars") or "")
    ]


def kopf_keys(obj: dict[str, Any]) -> list[str]:
    metadata = obj.get("metadata") or {}
    keys = [*(metadata.get("annotations") or {}), *(metadata.get("finalizers") or [])]
    return [k for k in keys if "kopf.zalando.org" in k]


def test_create_reaches_ready(operator: OperatorStack, cluster: Cluster, record: Any) -> None:
    recorder = record("create-ready")
    cluster.create("create-ready", seconds("provision", 1))

    obj = wait_until(lambda: ready(cluster, "create-ready"), timeout=60, what="phase Ready")

    provision = job(obj, "provisionJob")
    assert provision["state"] == "Succeeded", provision
    assert provision["id"]
    assert status_of(obj)["reconciledConfigVersion"] == status_of(obj)["desiredConfigVersion"]
    assert names.OPERATOR_FINALIZER in obj["metadata"]["finalizers"]
    history = status_of(obj)["jobs"]
    assert [(h["type"], h["jobID"], h["state"]) for h in history] == [
        ("provision", provision["id"], "Succeeded")
    ]
    # kopf's bookkeeping never reaches the object, in any version.
    recorder.stop()
    assert recorder.versions
    for version in recorder.versions:
        assert kopf_keys(version) == [], version["metadata"]
    reasons = {e.reason for e in cluster.events("create-ready")}
    assert "ProvisionJobLaunched" in reasons, reasons


def test_unmanaged_instance_is_left_alone(
    operator: OperatorStack, cluster: Cluster, automation: AutomationService
) -> None:
    cluster.create(
        "unmanaged",
        {names.MANAGEMENT_STATE_ANNOTATION: names.MANAGEMENT_STATE_UNMANAGED},
    )
    # A witness created after it: once the witness is Ready, the operator has long seen both.
    cluster.create("unmanaged-witness", seconds("provision", 0))
    wait_until(lambda: ready(cluster, "unmanaged-witness"), timeout=60, what="witness Ready")
    obj = cluster.get("unmanaged")
    assert obj is not None
    assert not obj.get("status"), obj.get("status")
    assert not obj["metadata"].get("finalizers")
    assert jobs_for(automation, "unmanaged", PROVISION_TEMPLATE) == []
    assert cluster.events("unmanaged") == []


def test_delete_deprovisions_then_the_object_goes(
    operator: OperatorStack, cluster: Cluster, automation: AutomationService, record: Any
) -> None:
    cluster.create("delete-after-ready", seconds("provision", 0))
    wait_until(lambda: ready(cluster, "delete-after-ready"), timeout=60, what="phase Ready")
    recorder = record("delete-after-ready")

    cluster.delete("delete-after-ready")
    wait_until(lambda: cluster.get("delete-after-ready") is None, timeout=60, what="deletion")

    deprovisions = jobs_for(automation, "delete-after-ready", DEPROVISION_TEMPLATE)
    assert [j["status"] for j in deprovisions] == ["successful"]
    wait_until(lambda: recorder.deleted, timeout=10, what="the DELETED watch event")
    recorder.stop()
    states = [job(v, "deprovisionJob").get("state") for v in recorder.versions]
    assert "Succeeded" in states, states
    assert all(status_of(v).get("phase") == "Deleting" for v in recorder.versions[1:])


def test_delete_during_provisioning_cancels_first(
    operator: OperatorStack, cluster: Cluster, automation: AutomationService, record: Any
) -> None:
    name = "delete-mid-provision"
    recorder = record(name)
    cluster.create(name, seconds("provision", 3600))  # until the deletion cancels it

    def provision_running() -> bool:
        jobs = jobs_for(automation, name, PROVISION_TEMPLATE)
        return bool(jobs) and jobs[0]["status"] == "running"

    wait_until(provision_running, timeout=30, what="the provision job to run")
    cluster.delete(name)
    wait_until(lambda: cluster.get(name) is None, timeout=60, what="deletion")
    wait_until(lambda: recorder.deleted, timeout=10, what="the DELETED watch event")
    recorder.stop()

    provisions = jobs_for(automation, name, PROVISION_TEMPLATE)
    deprovisions = jobs_for(automation, name, DEPROVISION_TEMPLATE)
    assert [j["status"] for j in provisions] == ["canceled"]
    assert [j["status"] for j in deprovisions] == ["successful"]

    with_deprovision = [v for v in recorder.versions if job(v, "deprovisionJob").get("id")]
    assert with_deprovision, "no version recorded the deprovision job"
    first = with_deprovision[0]
    # Invariant 3: the write that records the deprovision job already shows the provision
    # job's real terminal state with its own message.
    assert job(first, "provisionJob")["state"] == "Canceled", job(first, "provisionJob")
    assert job(first, "provisionJob")["message"] == "canceled"
    assert job(first, "deprovisionJob")["state"] == "Pending"
    assert job(first, "deprovisionJob")["blockDeletionOnFailure"] is True
    for version in with_deprovision:
        assert job(version, "provisionJob")["state"] == "Canceled"
    ids = {job(v, "deprovisionJob")["id"] for v in with_deprovision}
    assert len(ids) == 1
    assert all(kopf_keys(v) == [] for v in recorder.versions)


def available(cluster: Cluster, name: str) -> dict[str, Any] | None:
    obj = cluster.get(name)
    conditions = {c["type"]: c for c in status_of(obj).get("conditions") or []}
    return obj if conditions.get("Available", {}).get("status") == "True" else None


def test_metrics_count_jobs(operator: OperatorStack) -> None:
    with urllib.request.urlopen(operator.lab.handle.metrics_url, timeout=5) as response:
        text = response.read().decode()
    finished = re.search(
        r'cloudkit_job_duration_seconds_count\{provider="aap",state="Succeeded",'
        r'type="provision"\} (\d+)',
        text,
    )
    assert finished is not None and float(finished.group(1)) >= 1, text
    assert 'cloudkit_jobs_in_flight{provider="aap",type="deprovision"} 0.0' in text
    assert "cloudkit_reconcile_duration_seconds_count" in text
    assert "cloudkit_reconcile_errors_total" in text
    reads = re.search(r'cloudkit_kubernetes_requests_total\{verb="GET"\} (\S+)', text)
    writes = re.search(r'cloudkit_kubernetes_requests_total\{verb="PUT"\} (\S+)', text)
    assert reads is not None and float(reads.group(1)) >= 1, text
    assert writes is not None and float(writes.group(1)) >= 1, text


def run_operator_expecting_exit(stack: OperatorStack, env: dict[str, str]) -> str:
    assert_service_account(stack.cluster.operator_kubeconfig)
    finished = subprocess.run(
        stack.operator_argv(), env=env, capture_output=True, text=True, timeout=60
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 2, output
    assert "Traceback" not in output, output
    return output


def test_bad_token_exits_2_naming_the_variable(stack: OperatorStack) -> None:
    secret = "not-the-right-token-d9c1f"
    env = stack.operator_env(CLOUDKIT_AAP_TOKEN=secret)
    del env["CLOUDKIT_AAP_TOKEN_FILE"]  # the token itself, not the stack's file
    output = run_operator_expecting_exit(stack, env)
    assert "CLOUDKIT_AAP_TOKEN" in output
    assert secret not in output
    assert len(output.strip().splitlines()) == 1, output


def test_unreachable_url_exits_2_naming_the_variable(stack: OperatorStack) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    env = stack.operator_env(CLOUDKIT_AAP_URL=url, CLOUDKIT_AAP_STARTUP_TIMEOUT="1s")
    output = run_operator_expecting_exit(stack, env)
    assert "CLOUDKIT_AAP_URL" in output
    assert stack.automation.token not in output


def test_invalid_settings_exit_2_naming_each_variable(stack: OperatorStack) -> None:
    env = stack.operator_env(CLOUDKIT_AAP_STATUS_POLL_INTERVAL="0", CLOUDKIT_MAX_JOB_HISTORY="none")
    output = run_operator_expecting_exit(stack, env)
    assert "CLOUDKIT_AAP_STATUS_POLL_INTERVAL" in output
    assert "CLOUDKIT_MAX_JOB_HISTORY" in output
    assert stack.automation.token not in output


def test_restart_mid_provision_resumes_without_a_second_launch(
    operator: OperatorStack, cluster: Cluster, automation: AutomationService
) -> None:
    """SIGKILL while a provision job runs; the stack starts the operator again (as a kubelet
    would), which finds the job in status, polls it to the end and never launches a second
    one."""
    name = "restarted"
    cluster.create(name, seconds("provision", 4))

    def launched() -> dict[str, Any] | None:
        provision = job(cluster.get(name), "provisionJob")
        return provision if provision.get("id") else None

    job_id = wait_until(launched, timeout=30, what="the provision job id in status")["id"]
    restarts = operator.kill_stack_operator()
    wait_until(
        lambda: operator.stack_operator_restarts() > restarts,
        timeout=60,
        what="the stack to start its operator again",
    )
    obj = wait_until(lambda: ready(cluster, name), timeout=60, what="phase Ready after restart")
    assert job(obj, "provisionJob")["id"] == job_id
    assert job(obj, "provisionJob")["state"] == "Succeeded"
    launches = jobs_for(automation, name, PROVISION_TEMPLATE)
    assert [str(j["id"]) for j in launches] == [job_id]


def test_a_vm_crd_installed_later_is_watched(operator: OperatorStack, cluster: Cluster) -> None:
    """kopf started without the VirtualMachine CRD; once it exists, a labelled VM's readiness
    reaches the (already Ready, not requeued) instance through the VM watch alone. (Last: the
    stack's VM simulator and KubeVirt CRDs are gone for it.)"""
    name = "vm-watched"
    cluster.create(name, seconds("provision", 0))
    wait_until(lambda: ready(cluster, name), timeout=60, what="phase Ready")
    handle = operator.lab.handle
    simulator, handle.simulator = handle.simulator, None
    assert simulator is not None
    operator.loop.run(simulator.stop())
    # KubeVirt's finalizer on the VMs would hold the CRD's deletion: nobody releases it now.
    listed = kube_clients.json_object(
        cluster.custom.list_cluster_custom_object(
            names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL
        )
    )
    for vm in listed["items"]:
        cluster.custom.patch_namespaced_custom_object(
            names.KUBEVIRT_GROUP,
            names.KUBEVIRT_VERSION,
            vm["metadata"]["namespace"],
            names.VM_PLURAL,
            vm["metadata"]["name"],
            {"metadata": {"finalizers": None}},
        )
    extensions = kubernetes.client.ApiextensionsV1Api(cluster.api)
    for crd in (VM_CRD_NAME, VMI_CRD_NAME):
        extensions.delete_custom_resource_definition(crd)

    def gone() -> bool:
        listed = extensions.list_custom_resource_definition().items
        served = {kube_clients.filled(c.metadata).name for c in listed}
        return not served & {VM_CRD_NAME, VMI_CRD_NAME}

    wait_until(gone, timeout=30, what="the KubeVirt CRDs gone")
    restarts = operator.kill_stack_operator()  # it starts again without the CRD
    wait_until(
        lambda: operator.stack_operator_restarts() > restarts and operator.stack_operator_healthy(),
        timeout=120,
        what="the operator started again, healthy",
    )
    extensions.create_custom_resource_definition(kube_clients.body(vm_crd_manifest()))
    kubernetes.client.CoreV1Api(cluster.api).create_namespace(
        kube_clients.body({"metadata": {"name": "tenant-x"}})
    )

    def create_vm() -> bool:
        try:
            cluster.custom.create_namespaced_custom_object(
                names.KUBEVIRT_GROUP,
                names.KUBEVIRT_VERSION,
                "tenant-x",
                names.VM_PLURAL,
                {
                    "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
                    "kind": "VirtualMachine",
                    "metadata": {"name": name, "labels": {names.VM_INSTANCE_LABEL: name}},
                    "spec": {"runStrategy": "Always"},
                },
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:  # CRD not served yet
                return False
            raise
        return True

    wait_until(create_vm, timeout=30, what="the VirtualMachine CRD to be served")
    cluster.custom.patch_namespaced_custom_object_status(
        names.KUBEVIRT_GROUP,
        names.KUBEVIRT_VERSION,
        "tenant-x",
        names.VM_PLURAL,
        name,
        {
            "status": {
                "printableStatus": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )

    def referenced() -> dict[str, Any] | None:
        obj = available(cluster, name)
        reference = status_of(obj).get("virtualMachineReference") or {}
        return obj if reference.get("namespace") == "tenant-x" else None

    obj = wait_until(referenced, timeout=60, what="Available=True, the new VM referenced")
    assert status_of(obj)["virtualMachineReference"] == {
        "namespace": "tenant-x",
        "kubeVirtVirtualMachineName": name,
    }
