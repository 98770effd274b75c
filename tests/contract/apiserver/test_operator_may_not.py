"""What the operator's ServiceAccount may not do, sent as real requests with its token (the
kubernetes Python client) after `kubectl apply -k deploy/operator`: the authorizer answers
them as kube-apiserver does, so the least-privilege proof is as strict as a real cluster's.

Also the checks of the same path that are not about the operator: apply to the `/status` of
a missing object, a body naming another object, and RBAC objects the server must refuse.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.harness.kube_clients import api_client, body, filled

pytestmark = pytest.mark.stack
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]

DEPLOY = Path(__file__).parents[3] / "deploy" / "operator"
OPERATOR_NS, OPERATOR_SA = "cloudkit-operator-system", "cloudkit-operator-controller-manager"
GROUP, VERSION, PLURAL = "cloudkit.openshift.io", "v1alpha1", "computeinstances"
APPLY = "application/apply-patch+yaml"
RBAC_GROUP = "rbac.authorization.k8s.io"


def _instance(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComputeInstance",
            "metadata": {"name": name},
            "spec": {"templateID": "cloudkit_templates_ocp_virt_vm"}}  # fmt: skip


def _with_token(admin: client.ApiClient, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def _status(exc: ApiException) -> dict[str, Any]:
    return dict(json.loads(filled(exc.body, "the error's body")))


@pytest.fixture
def admin(apiserver: ApiServerHandle) -> Iterator[client.ApiClient]:
    with api_client(apiserver.kubeconfig) as api:
        yield api


@pytest.fixture
def operator(kubectl: Kubectl, admin: client.ApiClient) -> Iterator[client.ApiClient]:
    """The operator's identity as deployed, and a client with its ServiceAccount token."""
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), check=True)
    kubectl("apply", "-k", str(DEPLOY), check=True)
    kubectl("create", "namespace", "tenant-a", check=True)
    token = kubectl("create", "token", OPERATOR_SA, "-n", OPERATOR_NS, check=True).stdout.strip()
    with _with_token(admin, token) as api:
        yield api


def _apply(api: client.ApiClient, body: dict[str, Any], name: str, **kw: Any) -> Any:
    return client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, "tenant-a", PLURAL, name, body,
        field_manager="test", _content_type=APPLY, **kw,
    )  # fmt: skip


def test_apply_to_a_missing_object_needs_create(
    operator: client.ApiClient, admin: client.ApiClient
) -> None:
    # The operator may patch ComputeInstances, not create them: an apply that would create
    # one is refused with the create verb, as kube-apiserver's patch handler does.
    with pytest.raises(ApiException) as denied:
        _apply(operator, _instance("sneaky"), "sneaky")
    assert denied.value.status == 403
    assert 'cannot create resource "computeinstances"' in _status(denied.value)["message"]
    with pytest.raises(ApiException) as gone:
        client.CustomObjectsApi(admin).get_namespaced_custom_object(
            GROUP, VERSION, "tenant-a", PLURAL, "sneaky"
        )
    assert gone.value.status == 404

    # Once the object exists, the same apply is a patch the operator may send.
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        GROUP, VERSION, "tenant-a", PLURAL, _instance("present")
    )
    applied = _apply(operator, {**_instance("present"), "metadata": {
        "name": "present", "labels": {"seen": "yes"}}}, "present")  # fmt: skip
    assert applied["metadata"]["labels"] == {"seen": "yes"}


def test_apply_naming_another_object_is_a_bad_request(
    operator: client.ApiClient, admin: client.ApiClient
) -> None:
    objects = client.CustomObjectsApi(admin)
    objects.create_namespaced_custom_object(GROUP, VERSION, "tenant-a", PLURAL, _instance("a"))
    for api in (operator, admin):
        with pytest.raises(ApiException) as bad:
            _apply(api, _instance("b"), "a")
        assert bad.value.status == 400
        assert _status(bad.value)["message"] == (
            "the name of the object (b) does not match the name on the URL (a)"
        )
    # An apply that would create: the body's name decides nothing either.
    with pytest.raises(ApiException) as creating:
        _apply(admin, _instance("b"), "c")
    assert creating.value.status == 400
    assert "does not match the name on the URL (c)" in _status(creating.value)["message"]
    for name in ("b", "c"):
        with pytest.raises(ApiException) as absent:
            objects.get_namespaced_custom_object(GROUP, VERSION, "tenant-a", PLURAL, name)
        assert absent.value.status == 404


def test_apply_to_the_status_of_a_missing_object_is_not_found(
    operator: client.ApiClient, admin: client.ApiClient
) -> None:
    body = {**_instance("ghost"), "status": {"phase": "Ready"}}
    with pytest.raises(ApiException) as missing:
        client.CustomObjectsApi(admin).patch_namespaced_custom_object_status(
            GROUP, VERSION, "tenant-a", PLURAL, "ghost", body,
            field_manager="test", force=True, _content_type=APPLY,
        )  # fmt: skip
    assert missing.value.status == 404
    # The operator may only update the status: a patch of it is refused before any lookup.
    with pytest.raises(ApiException) as denied:
        client.CustomObjectsApi(operator).patch_namespaced_custom_object_status(
            GROUP, VERSION, "tenant-a", PLURAL, "ghost", body,
            field_manager="test", _content_type=APPLY,
        )  # fmt: skip
    assert denied.value.status == 403


def test_operator_may_not_write_rbac_or_grant_itself_more(operator: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(operator)
    role = {"metadata": {"name": "more"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}  # fmt: skip
    for call in (
        lambda: rbac.create_namespaced_role("tenant-a", body(role)),
        lambda: rbac.create_cluster_role(body(role)),
    ):
        with pytest.raises(ApiException) as denied:
            call()
        assert denied.value.status == 403


# -- RBAC objects: validated when stored, never read as something else -----------------------


MALFORMED: list[tuple[str, dict[str, Any], int, str]] = [
    # (kind, body, code, what the message names)
    ("ClusterRole", {"rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                "resourceNames": "one", "verbs": ["get"]}]},
     400, "PolicyRule.rules.resourceNames of type []string"),
    ("ClusterRole", {"rules": [{"apiGroups": ["*"], "resources": "*/status", "verbs": ["get"]}]},
     400, "PolicyRule.rules.resources of type []string"),
    ("ClusterRole", {"rules": [{"apiGroups": [""], "resources": ["pods"]}]},
     422, "rules[0].verbs: Required value"),
    ("ClusterRole", {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"],
                                "nonResourceURLs": ["/metrics"]}]},
     422, "rules[0].nonResourceURLs: Invalid value"),
    ("ClusterRoleBinding", {"roleRef": {"kind": "ClusterRole", "name": "x"}, "subjects": "bob"},
     400, "ClusterRoleBinding.subjects of type []v1.Subject"),
    ("ClusterRoleBinding", {"subjects": [{"kind": "User", "name": "bob"}]},
     422, "roleRef.kind: Unsupported value"),
    ("ClusterRoleBinding", {"roleRef": {"kind": "ClusterRole", "name": "x"},
                            "subjects": [{"kind": "ServiceAccount", "name": "bot"}]},
     422, "subjects[0].namespace: Required value"),
    ("ClusterRoleBinding", {"roleRef": {"kind": "ClusterRole", "name": "x"},
                            "subjects": [{"kind": "Robot", "name": "bot"}]},
     422, "subjects[0].kind: Unsupported value"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "body", "code", "names"), MALFORMED)
def test_malformed_rbac_objects_are_refused(
    admin: client.ApiClient, kind: str, body: dict[str, Any], code: int, names: str
) -> None:
    plural = kind.lower() + "s"
    full = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": {"name": "bad"}, **body}
    with pytest.raises(ApiException) as refused:
        _post(admin, f"/apis/{RBAC_GROUP}/v1/{plural}", full)
    assert refused.value.status == code
    status = _status(refused.value)
    assert names in status["message"]
    if code == 422:
        assert status["reason"] == "Invalid"
        assert status["details"]["causes"][0]["field"] == names.split(":")[0]
    # Nothing was stored, and the server answers the next request (no fail-open, no 500).
    assert client.RbacAuthorizationV1Api(admin).list_cluster_role_binding().items == []


def _post(api: client.ApiClient, path: str, payload: dict[str, Any]) -> Any:
    """POST a raw JSON body (the typed models would reshape a malformed one)."""
    method, url, headers, data, _ = api.param_serialize(
        "POST", path, header_params={"Content-Type": "application/json"}, body=payload,
        auth_settings=["BearerToken"],
    )  # fmt: skip
    response = api.call_api(method, url, header_params=headers, body=data)
    # RESTResponse.read is unannotated and `data` is typed from its initial None: the bytes.
    answer: bytes = response.read()  # type: ignore[no-untyped-call]
    if response.status >= 400:
        raise ApiException(http_resp=response)
    return json.loads(answer)


# -- escalation: a Role needs the rights it grants (or escalate), a binding its role's (or bind)


def _role(name: str, resource: str, kind: str = "Role") -> dict[str, Any]:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]}  # fmt: skip


def _binding(name: str, role_kind: str, role: str, sa: str) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa,
                          "namespace": "tenant-a"}]}  # fmt: skip


def test_rbac_writers_may_not_grant_what_they_do_not_hold(
    kubectl: Kubectl, admin: client.ApiClient
) -> None:
    kubectl("create", "namespace", "tenant-a", check=True)
    kubectl("create", "serviceaccount", "delegate", "-n", "tenant-a", check=True)
    admin_rbac = client.RbacAuthorizationV1Api(admin)
    writer = {**_role("rbac-writer", "configmaps"), "rules": [
        {"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"],
         "verbs": ["create", "update", "get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}  # fmt: skip
    admin_rbac.create_namespaced_role("tenant-a", body(writer))
    admin_rbac.create_namespaced_role_binding(
        "tenant-a", body(_binding("delegate-writer", "Role", "rbac-writer", "delegate"))
    )
    admin_rbac.create_cluster_role(body(_role("secret-reader", "secrets", "ClusterRole")))
    token = kubectl("create", "token", "delegate", "-n", "tenant-a", check=True).stdout.strip()
    with _with_token(admin, token) as api:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            "tenant-a", body(_role("cm-reader", "configmaps"))
        )  # held: fine
        for create in (
            lambda: rbac.create_namespaced_role("tenant-a", body(_role("sneaky", "secrets"))),
            lambda: rbac.create_namespaced_role_binding(
                "tenant-a", body(_binding("sneaky", "ClusterRole", "secret-reader", "delegate"))),
        ):  # fmt: skip
            with pytest.raises(ApiException) as denied:
                create()
            assert denied.value.status == 403
            message = _status(denied.value)["message"]
            assert 'is forbidden: user "system:serviceaccount:tenant-a:delegate"' in message
            assert "is attempting to grant RBAC permissions not currently held:\n" in message
            assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}' in message

        # escalate on roles, bind on the one ClusterRole: each lifts its own check only.
        admin_rbac.patch_namespaced_role("rbac-writer", "tenant-a", {"rules": [
            *writer["rules"],
            {"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate"]},
            {"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"],
             "resourceNames": ["secret-reader"]}]})  # fmt: skip
        rbac.create_namespaced_role("tenant-a", body(_role("escalated", "secrets")))
        rbac.create_namespaced_role_binding(
            "tenant-a", body(_binding("bound", "ClusterRole", "secret-reader", "delegate"))
        )
        rbac.create_namespaced_role("tenant-a", body(_role("pod-reader", "pods")))  # escalate
        with pytest.raises(ApiException) as still:
            rbac.create_namespaced_role_binding(
                "tenant-a", body(_binding("bound-2", "Role", "pod-reader", "delegate"))
            )
        assert still.value.status == 403  # bind was granted on secret-reader only
