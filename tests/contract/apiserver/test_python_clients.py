"""The kubernetes Python client's DynamicClient and an Ansible kubernetes.core.k8s task."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import dynamic

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD
from tests.harness.kube_clients import (
    Watch,
    api_client,
    body,
    dynamic_client,
    filled,
    json_object,
)

pytestmark = pytest.mark.stack


def _dynamic(handle: ApiServerHandle) -> dynamic.DynamicClient:
    return dynamic_client(api_client(handle.kubeconfig))


def test_dynamic_client_discovery_crud_watch(
    apiserver: ApiServerHandle, kube_cache_dir: Path
) -> None:
    dyn = _dynamic(apiserver)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=yaml.safe_load(WIDGETS_CRD.read_text()))
    dyn.resources.invalidate_cache()
    widgets = dyn.resources.get(api_version="test.cloudkit.dev/v1", kind="Widget")
    widget = {
        "apiVersion": "test.cloudkit.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 2, "zone": "a"},
    }
    created = widgets.create(body=widget, namespace="default")
    assert created.metadata.generation == 1
    listed = widgets.get(namespace="default")
    assert [i.metadata.name for i in listed.items] == ["w1"]

    seen: list[tuple[str, int]] = []
    listed_once = threading.Event()

    def watch() -> None:
        for event in widgets.watch(namespace="default", name="w1", timeout=5):
            seen.append((event["type"], event["object"].spec.size))
            listed_once.set()
            if len(seen) == 2:
                return

    thread = threading.Thread(target=watch)
    thread.start()
    # The patch must come after the watch's initial ADDED, or the watch
    # starts from the patched object and sees one event only.
    assert listed_once.wait(10), "the watch sent no initial ADDED event"
    widgets.patch(
        name="w1",
        namespace="default",
        body={"spec": {"size": 5}},
        content_type="application/merge-patch+json",
    )
    thread.join(10)
    assert seen == [("ADDED", 2), ("MODIFIED", 5)]

    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"metadata": {"name": "c1"}, "data": {"a": "b"}}, namespace="default")
    patched = cms.patch(name="c1", namespace="default", body={"data": {"c": "d"}})  # SMP by default
    assert patched.data.to_dict() == {"a": "b", "c": "d"}
    widgets.delete(name="w1", namespace="default")
    assert widgets.get(namespace="default").items == []


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: a configmap
      kubernetes.core.k8s:
        kubeconfig: {kubeconfig}
        state: present
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {{name: from-ansible, namespace: default}}
          data: {{a: b}}
    - name: a widget, applied
      kubernetes.core.k8s:
        kubeconfig: {kubeconfig}
        state: present
        apply: true
        definition:
          apiVersion: test.cloudkit.dev/v1
          kind: Widget
          metadata: {{name: w-ansible, namespace: default}}
          spec: {{size: 4, zone: a}}
    - name: read it back
      kubernetes.core.k8s_info:
        kubeconfig: {kubeconfig}
        api_version: test.cloudkit.dev/v1
        kind: Widget
        namespace: default
        name: w-ansible
      register: info
    - assert:
        that: info.resources[0].spec.size == 4
"""


def test_ansible_k8s_module(apiserver: ApiServerHandle, kubectl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", str(WIDGETS_CRD), check=True)
    kubectl("wait", "--for=condition=established", "crd/widgets.test.cloudkit.dev", check=True)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(kubeconfig=apiserver.kubeconfig))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "from-ansible" in kubectl("get", "cm", check=True).stdout
    assert "w-ansible" in kubectl("get", "widgets", check=True).stdout


def test_typed_and_custom_objects_apis(apiserver: ApiServerHandle) -> None:
    from kubernetes import client

    admin = api_client(apiserver.kubeconfig)
    core = client.CoreV1Api(admin)
    custom = client.CustomObjectsApi(admin)
    ext = client.ApiextensionsV1Api(admin)
    ext.create_custom_resource_definition(body(yaml.safe_load(WIDGETS_CRD.read_text())))
    widget = {
        "apiVersion": "test.cloudkit.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 1, "zone": "a"},
    }
    custom.create_namespaced_custom_object("test.cloudkit.dev", "v1", "default", "widgets", widget)
    patched = json_object(
        custom.patch_namespaced_custom_object(
            "test.cloudkit.dev", "v1", "default", "widgets", "w1", {"spec": {"size": 2}}
        )
    )
    assert patched["spec"]["size"] == 2
    status = json_object(
        custom.patch_namespaced_custom_object_status(
            "test.cloudkit.dev", "v1", "default", "widgets", "w1", {"status": {"phase": "Ready"}}
        )
    )
    assert status["status"]["phase"] == "Ready"

    cm = core.create_namespaced_config_map(
        "default", body({"metadata": {"name": "c1"}, "data": {"a": "b"}})
    )
    core.patch_namespaced_config_map("c1", "default", {"data": {"c": "d"}})
    assert core.read_namespaced_config_map("c1", "default").data == {"a": "b", "c": "d"}
    events = []
    for event in Watch().stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=filled(cm.metadata).resource_version,
        timeout_seconds=1,
    ):
        events.append(event["type"])
    assert events == ["MODIFIED"]
    core.delete_namespaced_config_map("c1", "default")
    assert core.list_namespaced_config_map("default").items == []
