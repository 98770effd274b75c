"""`cloudkit operator` with AAP direct on the local stack: create, delete, delete mid-provision,
and a bad token at start. Every version of an instance is recorded from a watch, so ordering
claims (the provision job is terminal no later than the write that adds the deprovision job)
are checked on each write, not on lucky polls."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from cloudkit.api import names
from cloudkit.local.kubevirt.crd import vm_crd_manifest
from cloudkit.local.stack.ports import free_port
from tests.harness import kube_clients
from tests.harness.operator_process import (
    BIN,
    NAMESPACE,
    AutomationService,
    Cluster,
    Operator,
    assert_service_account,
    healthy,
    operator_env,
    start_operator,
    wait_until,
)

pytestmark = pytest.mark.stack

PROVISION_SECONDS_ANNOTATION = "test.cloudkit.io/provision-seconds"


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


def test_create_reaches_ready(operator: Operator, cluster: Cluster, record: Any) -> None:
    recorder = record("create-ready")
    cluster.create("create-ready", {PROVISION_SECONDS_ANNOTATION: "1"})

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
    operator: Operator, cluster: Cluster, automation: AutomationService
) -> None:
    cluster.create(
        "unmanaged",
        {names.MANAGEMENT_STATE_ANNOTATION: names.MANAGEMENT_STATE_UNMANAGED},
    )
    # A witness created after it: once the witness is Ready, the operator has long seen both.
    cluster.create("unmanaged-witness", {PROVISION_SECONDS_ANNOTATION: "0"})
    wait_until(lambda: ready(cluster, "unmanaged-witness"), timeout=60, what="witness Ready")
    obj = cluster.get("unmanaged")
    assert obj is not None
    assert not obj.get("status"), obj.get("status")
    assert not obj["metadata"].get("finalizers")
    assert jobs_for(automation, "unmanaged", "cloudkit provision (test)") == []
    assert cluster.events("unmanaged") == []


def test_delete_deprovisions_then_the_object_goes(
    operator: Operator, cluster: Cluster, automation: AutomationService, record: Any
) -> None:
    cluster.create("delete-after-ready", {PROVISION_SECONDS_ANNOTATION: "0"})
    wait_until(lambda: ready(cluster, "delete-after-ready"), timeout=60, what="phase Ready")
    recorder = record("delete-after-ready")

    cluster.delete("delete-after-ready")
    wait_until(lambda: cluster.get("delete-after-ready") is None, timeout=60, what="deletion")

    deprovisions = jobs_for(automation, "delete-after-ready", "cloudkit deprovision (test)")
    assert [j["status"] for j in deprovisions] == ["successful"]
    wait_until(lambda: recorder.deleted, timeout=10, what="the DELETED watch event")
    recorder.stop()
    states = [job(v, "deprovisionJob").get("state") for v in recorder.versions]
    assert "Succeeded" in states, states
    assert all(status_of(v).get("phase") == "Deleting" for v in recorder.versions[1:])


def test_delete_during_provisioning_cancels_first(
    operator: Operator, cluster: Cluster, automation: AutomationService, record: Any
) -> None:
    name = "delete-mid-provision"
    recorder = record(name)
    cluster.create(name, {PROVISION_SECONDS_ANNOTATION: "60"})

    def provision_running() -> bool:
        jobs = jobs_for(automation, name, "cloudkit provision (test)")
        return bool(jobs) and jobs[0]["status"] == "running"

    wait_until(provision_running, timeout=30, what="the provision job to run")
    cluster.delete(name)
    wait_until(lambda: cluster.get(name) is None, timeout=60, what="deletion")
    wait_until(lambda: recorder.deleted, timeout=10, what="the DELETED watch event")
    recorder.stop()

    provisions = jobs_for(automation, name, "cloudkit provision (test)")
    deprovisions = jobs_for(automation, name, "cloudkit deprovision (test)")
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


def test_a_vm_crd_installed_later_is_watched(operator: Operator, cluster: Cluster) -> None:
    """kopf started without the VirtualMachine CRD; once it exists, a labelled VM's readiness
    reaches the (already Ready, not requeued) instance through the VM watch alone."""
    name = "vm-watched"
    cluster.create(name, {PROVISION_SECONDS_ANNOTATION: "0"})
    wait_until(lambda: ready(cluster, name), timeout=60, what="phase Ready")
    extensions = kubernetes.client.ApiextensionsV1Api(cluster.api)
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
    obj = wait_until(lambda: available(cluster, name), timeout=60, what="Available=True")
    assert status_of(obj)["virtualMachineReference"] == {
        "namespace": "tenant-x",
        "kubeVirtVirtualMachineName": name,
    }


def test_metrics_count_jobs(operator: Operator) -> None:
    url = f"http://{operator.env['CLOUDKIT_METRICS_ADDRESS']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
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


def test_restart_mid_provision_resumes_without_a_second_launch(
    operator: Operator, cluster: Cluster, automation: AutomationService, tmp_path: Path
) -> None:
    """SIGKILL while a provision job runs; the next operator finds the job in status, polls it
    to the end and never launches a second one. (Runs last among the tests that need the
    module's operator: the restarted process takes its place.)"""
    name = "restarted"
    cluster.create(name, {PROVISION_SECONDS_ANNOTATION: "4"})

    def launched() -> dict[str, Any] | None:
        provision = job(cluster.get(name), "provisionJob")
        return provision if provision.get("id") else None

    job_id = wait_until(launched, timeout=30, what="the provision job id in status")["id"]
    operator.process.send_signal(signal.SIGKILL)
    operator.process.wait(timeout=10)

    restarted = start_operator(operator.env, tmp_path / "restarted.log")
    operator.process, operator.log_path = restarted.process, restarted.log_path
    wait_until(lambda: healthy(operator), timeout=60, what="the restarted operator's health")

    obj = wait_until(lambda: ready(cluster, name), timeout=60, what="phase Ready after restart")
    assert job(obj, "provisionJob")["id"] == job_id
    assert job(obj, "provisionJob")["state"] == "Succeeded"
    launches = jobs_for(automation, name, "cloudkit provision (test)")
    assert [str(j["id"]) for j in launches] == [job_id]


def run_operator_expecting_exit(env: dict[str, str]) -> str:
    assert_service_account(env)
    finished = subprocess.run(
        [str(BIN / "cloudkit"), "operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 2, output
    assert "Traceback" not in output, output
    return output


def test_bad_token_exits_2_naming_the_variable(
    cluster: Cluster, automation: AutomationService
) -> None:
    secret = "not-the-right-token-d9c1f"
    output = run_operator_expecting_exit(
        operator_env(cluster, automation, CLOUDKIT_AAP_TOKEN=secret)
    )
    assert "CLOUDKIT_AAP_TOKEN" in output
    assert secret not in output
    assert len(output.strip().splitlines()) == 1, output


def test_unreachable_url_exits_2_naming_the_variable(
    cluster: Cluster, automation: AutomationService
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    env = operator_env(cluster, automation, CLOUDKIT_AAP_URL=url, CLOUDKIT_AAP_STARTUP_TIMEOUT="1s")
    output = run_operator_expecting_exit(env)
    assert "CLOUDKIT_AAP_URL" in output
    assert automation.handle.token not in output


def test_invalid_settings_exit_2_naming_each_variable(
    cluster: Cluster, automation: AutomationService
) -> None:
    env = operator_env(
        cluster,
        automation,
        CLOUDKIT_AAP_STATUS_POLL_INTERVAL="0",
        CLOUDKIT_MAX_JOB_HISTORY="none",
    )
    output = run_operator_expecting_exit(env)
    assert "CLOUDKIT_AAP_STATUS_POLL_INTERVAL" in output
    assert "CLOUDKIT_MAX_JOB_HISTORY" in output
    assert automation.handle.token not in output
