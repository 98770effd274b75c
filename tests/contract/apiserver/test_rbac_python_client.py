"""RBAC through the kubernetes Python client: TokenRequest, a 403 Status, a permitted
status patch and SelfSubjectAccessReview, all under a ServiceAccount token."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD
from tests.harness.kube_clients import api_client, body, dynamic_client, filled, json_object

pytestmark = pytest.mark.stack

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "widget-status"},
    "rules": [
        {"apiGroups": ["test.cloudkit.dev"], "resources": ["widgets"], "verbs": ["get", "list"]},
        {"apiGroups": ["test.cloudkit.dev"], "resources": ["widgets/status"], "verbs": ["patch"]},
    ],
}
BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "bot-widget-status"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "widget-status"},
    "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}],
}  # fmt: skip


def _admin(handle: ApiServerHandle) -> client.ApiClient:
    return api_client(handle.kubeconfig)


def _with_token(admin: client.ApiClient, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def test_service_account_under_rbac(apiserver: ApiServerHandle) -> None:
    admin = _admin(apiserver)
    dyn = dynamic_client(admin)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=yaml.safe_load(WIDGETS_CRD.read_text()))
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_cluster_role(body(ROLE))
    rbac.create_cluster_role_binding(body(BINDING))
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account("default", body({"metadata": {"name": "bot"}}))
    issued = core.create_namespaced_service_account_token(
        "bot", "default", body({"spec": {"expirationSeconds": 900}})
    )
    issued_status = filled(issued.status, "the TokenRequest's status")
    assert filled(issued.spec).expiration_seconds == 900 and issued_status.expiration_timestamp
    dyn.resources.invalidate_cache()
    widgets = dyn.resources.get(api_version="test.cloudkit.dev/v1", kind="Widget")
    widgets.create(
        body={"apiVersion": "test.cloudkit.dev/v1", "kind": "Widget",
              "metadata": {"name": "w1"}, "spec": {"size": 2, "zone": "a"}},
        namespace="default",
    )  # fmt: skip

    bot = _with_token(admin, filled(issued_status.token, "the token"))
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(bot).create_namespaced_config_map(
            "default", body({"metadata": {"name": "c"}})
        )
    assert denied.value.status == 403
    status = yaml.safe_load(filled(denied.value.body, "the 403's body"))
    assert status["reason"] == "Forbidden"
    assert status["details"] == {"kind": "configmaps"}

    objects = client.CustomObjectsApi(bot)
    patched = json_object(
        objects.patch_namespaced_custom_object_status(
            "test.cloudkit.dev", "v1", "default", "widgets", "w1", {"status": {"phase": "Ready"}}
        )
    )
    assert patched["status"]["phase"] == "Ready"
    with pytest.raises(ApiException) as spec_denied:
        objects.patch_namespaced_custom_object(
            "test.cloudkit.dev", "v1", "default", "widgets", "w1", {"spec": {"size": 5}}
        )
    assert spec_denied.value.status == 403

    review = client.AuthorizationV1Api(bot).create_self_subject_access_review(
        body({"spec": {"resourceAttributes": {"verb": "patch", "group": "test.cloudkit.dev",
                                              "resource": "widgets", "subresource": "status"}}})
    )  # fmt: skip
    review_status = filled(review.status, "the review's status")
    assert review_status.allowed
    assert review_status.reason == (
        'RBAC: allowed by ClusterRoleBinding "bot-widget-status" of ClusterRole "widget-status"'
    )
