"""ComputeInstance models on the wire (camelCase round trip) and the Go-style config version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cloudkit.api.config_version import config_version, fnv1a_64, go_json
from cloudkit.api.jobs import JobState
from cloudkit.api.models import ComputeInstance, ComputeInstanceSpec

MINIMAL: dict[str, Any] = {
    "apiVersion": "cloudkit.openshift.io/v1alpha1",
    "kind": "ComputeInstance",
    "metadata": {"name": "vm1", "labels": {}, "annotations": {}, "finalizers": []},
    "spec": {"templateID": "sample_template"},
    "status": {"conditions": [], "jobs": []},
}

FULL: dict[str, Any] = {
    "apiVersion": "cloudkit.openshift.io/v1alpha1",
    "kind": "ComputeInstance",
    "metadata": {
        "name": "vm1",
        "namespace": "cloudkit-computeinstance",
        "uid": "u-1",
        "resourceVersion": "7",
        "generation": 2,
        "creationTimestamp": "2026-02-10T12:00:00Z",
        "labels": {"cloudkit.openshift.io/computeinstance-uuid": "abc"},
        "annotations": {"cloudkit.openshift.io/tenant": "t1"},
        "finalizers": ["cloudkit.openshift.io/computeinstance"],
    },
    "spec": {
        "templateID": "osac.templates.ocp_virt_vm",
        "templateParameters": '{"a":"b"}',
        "image": {"sourceType": "registry", "sourceRef": "quay.io/fedora:40"},
        "cores": 2,
        "memoryGiB": 4,
        "bootDisk": {"sizeGiB": 20, "storageClass": "fast"},
        "additionalDisks": [{"sizeGiB": 10}],
        "runStrategy": "Halted",
        "userDataSecretRef": {"name": "ud"},
        "sshKey": "ssh-ed25519 AAAA",
        "restartRequestedAt": "2026-02-10T12:30:00Z",
    },
    "status": {
        "phase": "Ready",
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "AsExpected",
                "message": "",
                "lastTransitionTime": "2026-02-10T12:05:00Z",
            }
        ],
        "provisionJob": {
            "id": "42",
            "state": "Succeeded",
            "message": "done",
            "blockDeletionOnFailure": False,
            "correlationID": "c-1",
        },
        "deprovisionJob": {
            "id": "",
            "state": "Pending",
            "message": "",
            "blockDeletionOnFailure": True,
        },
        "jobs": [
            {
                "jobID": "42",
                "type": "provision",
                "timestamp": "2026-02-10T12:00:01Z",
                "state": "Succeeded",
                "message": "done",
                "blockDeletionOnFailure": False,
            }
        ],
        "desiredConfigVersion": "aa32274dc7191c79",
        "reconciledConfigVersion": "aa32274dc7191c79",
        "virtualMachineReference": {"namespace": "ns", "kubeVirtVirtualMachineName": "vm1"},
        "tenantReference": {"name": "t1", "namespace": "ns"},
    },
}


@pytest.mark.parametrize("obj", [MINIMAL, FULL], ids=["minimal", "full"])
def test_round_trip(obj: dict[str, Any]) -> None:
    assert ComputeInstance.model_validate(obj).to_wire() == obj


def test_camel_case_names_reach_python_fields() -> None:
    ci = ComputeInstance.model_validate(FULL)
    assert ci.spec.template_id == "osac.templates.ocp_virt_vm"
    assert ci.spec.memory_gi_b == 4
    assert ci.spec.boot_disk is not None and ci.spec.boot_disk.size_gi_b == 20
    assert ci.status.jobs[0].job_id == "42"
    assert ci.status.jobs[0].state is JobState.SUCCEEDED
    assert ci.status.deprovision_job is not None
    assert ci.status.deprovision_job.block_deletion_on_failure is True
    vm = ci.status.virtual_machine_reference
    assert vm is not None and vm.kube_virt_virtual_machine_name == "vm1"


def test_unknown_fields_survive_the_model() -> None:
    obj = {**MINIMAL, "spec": {"templateID": "t", "futureField": 1}}
    assert ComputeInstance.model_validate(obj).to_wire()["spec"]["futureField"] == 1


def test_config_version_vector() -> None:
    spec = ComputeInstanceSpec.model_validate({"templateID": "sample_template"})
    assert go_json(spec) == '{"templateID":"sample_template"}'
    assert config_version(spec) == "aa32274dc7191c79"


def test_fnv1a_64_known_values() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C


def test_go_field_order_not_input_order() -> None:
    spec = ComputeInstanceSpec.model_validate(
        {
            "restartRequestedAt": "2026-02-10T13:30:00+01:00",
            "sshKey": "k",
            "cores": 2,
            "templateParameters": "{}",
            "templateID": "t",
        }
    )
    assert go_json(spec) == (
        '{"templateID":"t","templateParameters":"{}","cores":2,"sshKey":"k",'
        '"restartRequestedAt":"2026-02-10T12:30:00Z"}'
    )


def test_html_characters_escaped_like_go() -> None:
    spec = ComputeInstanceSpec.model_validate(
        {"templateID": "t", "templateParameters": '{"x":"<a&b>"}'}
    )
    assert go_json(spec) == (
        '{"templateID":"t","templateParameters":"{\\"x\\":\\"\\u003ca\\u0026b\\u003e\\"}"}'
    )


def test_empty_optional_fields_are_omitted() -> None:
    spec = ComputeInstanceSpec(template_id="t", template_parameters="", ssh_key=None)
    assert go_json(spec) == '{"templateID":"t"}'
    assert spec.restart_requested_at is None
    later = ComputeInstanceSpec(
        template_id="t", restart_requested_at=datetime(2026, 2, 10, 12, tzinfo=UTC)
    )
    assert config_version(later) != config_version(spec)
