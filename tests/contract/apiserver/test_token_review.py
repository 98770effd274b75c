"""TokenReview through the kubernetes Python client and `kubectl create --raw`: a
ServiceAccount token's user (username, uid, groups) and audiences, invalid and revoked tokens,
and RBAC on `create tokenreviews` for the caller."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cloudkit.local.apiserver.authn import AUDIENCE
from cloudkit.local.apiserver.main import ApiServerHandle
from tests.harness.kube_clients import api_client, body, filled

pytestmark = pytest.mark.stack

REVIEWER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "token-reviewer"},
    "rules": [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ],
}


def _admin(handle: ApiServerHandle) -> client.ApiClient:
    return api_client(handle.kubeconfig)


def _with_token(admin: client.ApiClient, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def _account(admin: client.ApiClient, namespace: str, name: str, **spec: object) -> tuple[str, str]:
    """(uid, a token) of a new ServiceAccount."""
    core = client.CoreV1Api(admin)
    if namespace != "default":
        core.create_namespace(body({"metadata": {"name": namespace}}))
    account = core.create_namespaced_service_account(namespace, body({"metadata": {"name": name}}))
    issued = core.create_namespaced_service_account_token(name, namespace, body({"spec": spec}))
    uid = filled(filled(account.metadata).uid, "the account's uid")
    return uid, filled(filled(issued.status).token, "the token")


def _review(api: client.ApiClient, token: str, audiences: list[str] | None = None) -> object:
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))
    return client.AuthenticationV1Api(api).create_token_review(review)


def test_a_service_account_token_is_reviewed_as_its_account(apiserver: ApiServerHandle) -> None:
    admin = _admin(apiserver)
    uid, token = _account(admin, "acme", "ci")
    answer = _review(admin, token)
    status = answer.status  # type: ignore[attr-defined]
    assert status.authenticated is True
    assert status.user.username == "system:serviceaccount:acme:ci"
    assert status.user.uid == uid
    assert set(status.user.groups) == {
        "system:serviceaccounts",
        "system:serviceaccounts:acme",
        "system:authenticated",
    }
    assert status.audiences == [AUDIENCE]
    assert answer.spec.token in ("", None)  # type: ignore[attr-defined]


def test_invalid_and_revoked_tokens_are_not_authenticated(apiserver: ApiServerHandle) -> None:
    admin = _admin(apiserver)
    _, token = _account(admin, "default", "gone")
    for bad in ("not-a-token", token[:-4] + "AAAA"):
        status = _review(admin, bad).status  # type: ignore[attr-defined]
        assert not status.authenticated and not (status.user and status.user.username)
    client.CoreV1Api(admin).delete_namespaced_service_account("gone", "default")
    assert not _review(admin, token).status.authenticated  # type: ignore[attr-defined]


def test_audiences_are_those_the_token_was_requested_for(apiserver: ApiServerHandle) -> None:
    admin = _admin(apiserver)
    _, token = _account(admin, "default", "aud", audiences=["cloudkit-fulfillment"])
    status = _review(admin, token, ["cloudkit-fulfillment", "other"]).status  # type: ignore[attr-defined]
    assert status.authenticated and status.audiences == ["cloudkit-fulfillment"]
    # Without audiences the server's own are meant; the token is not for the API server.
    assert not _review(admin, token).status.authenticated  # type: ignore[attr-defined]


def test_the_reviewer_needs_create_on_tokenreviews(apiserver: ApiServerHandle) -> None:
    admin = _admin(apiserver)
    _, subject = _account(admin, "default", "subject")
    _, reviewer_token = _account(admin, "default", "reviewer")
    reviewer = _with_token(admin, reviewer_token)
    with pytest.raises(ApiException) as denied:
        _review(reviewer, subject)
    assert denied.value.status == 403
    assert subject not in (denied.value.body or "")
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_cluster_role(body(REVIEWER_ROLE))
    rbac.create_cluster_role_binding(
        body(
            {
                "metadata": {"name": "reviewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "token-reviewer",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "reviewer", "namespace": "default"}
                ],
            }
        )
    )
    status = _review(reviewer, subject).status  # type: ignore[attr-defined]
    assert status.user.username == "system:serviceaccount:default:subject"


def test_kubectl_create_raw_posts_a_token_review(
    apiserver: ApiServerHandle,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    _, token = _account(_admin(apiserver), "default", "raw")
    body = tmp_path / "review.json"
    body.write_text(
        json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            }
        )
    )
    result = kubectl(
        "create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews", "-f", str(body)
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["kind"] == "TokenReview" and answer["status"]["authenticated"] is True
    assert answer["status"]["user"]["username"] == "system:serviceaccount:default:raw"
    assert token not in result.stdout
    body.write_text(
        json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}})
    )
    refused = kubectl(
        "create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews", "-f", str(body)
    )
    assert refused.returncode != 0 and "token is required" in refused.stderr


def test_the_review_apis_are_in_discovery_as_kubectl_needs_them(
    apiserver: ApiServerHandle,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    """kubectl maps a kind to its resource through discovery: without the entry, `kubectl
    create -f` of a TokenReview fails although the endpoint answers."""
    listed = kubectl("api-resources", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert {
        "tokenreviews.authentication.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    } <= names
    _, token = _account(_admin(apiserver), "default", "by-kind")
    body = tmp_path / "review.json"
    body.write_text(
        json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            }
        )
    )
    created = kubectl("create", "-f", str(body), "-o", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"]["user"]["username"] == (
        "system:serviceaccount:default:by-kind"
    )
    whoami = kubectl("auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["kind"] == "SelfSubjectReview"
