"""ServiceAccount tokens checked by a TokenReview against the local API server: the caller is
the account's namespace, configured accounts are admins, anything else is a bare 401."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from cloudkit.fulfillment.auth import REFUSED, AuthSettings, build_authenticator
from cloudkit.fulfillment.caller import Caller, Unauthenticated
from cloudkit.local.apiserver.main import ApiServerHandle
from tests.harness.kube_clients import api_client, body, filled

pytestmark = pytest.mark.stack


def _token(handle: ApiServerHandle, namespace: str, name: str) -> str:
    core = client.CoreV1Api(api_client(handle.kubeconfig))
    if namespace != "default":
        core.create_namespace(body({"metadata": {"name": namespace}}))
    core.create_namespaced_service_account(namespace, body({"metadata": {"name": name}}))
    issued = core.create_namespaced_service_account_token(name, namespace, body({"spec": {}}))
    return str(filled(issued.status, "the TokenRequest's status").token)


async def test_service_accounts_are_callers_of_their_namespace(apiserver: ApiServerHandle) -> None:
    acme, ops = _token(apiserver, "acme", "ci"), _token(apiserver, "ops", "controller")
    settings = AuthSettings(
        kubeconfig=apiserver.kubeconfig, admin_accounts=frozenset({"ops:controller"})
    )
    authenticator = build_authenticator(settings)
    try:
        assert await authenticator.authenticate(acme) == Caller(
            user="system:serviceaccount:acme:ci", tenant="acme", admin=False
        )
        assert await authenticator.authenticate(ops) == Caller(
            user="system:serviceaccount:ops:controller", tenant="ops", admin=True
        )
        # The cluster's admin token is valid there, but it is no ServiceAccount: no tenant.
        with pytest.raises(Unauthenticated, match=f"^{REFUSED}$"):
            await authenticator.authenticate(apiserver.token)
        with pytest.raises(Unauthenticated, match=f"^{REFUSED}$"):
            await authenticator.authenticate(acme[:-4] + "AAAA")
    finally:
        await authenticator.close()


async def test_a_reviewer_without_rights_refuses_without_quoting_the_token(
    apiserver: ApiServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service's own account may not create TokenReviews: every token is a bare 401 and
    the log says why (the API server's status), never with the token."""
    subject, weak = _token(apiserver, "acme", "ci"), _token(apiserver, "default", "weak")
    kubeconfig = yaml.safe_load(apiserver.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": weak}
    weak_config = tmp_path / "weak.kubeconfig"
    weak_config.write_text(yaml.safe_dump(kubeconfig))
    authenticator = build_authenticator(AuthSettings(kubeconfig=weak_config))
    caplog.set_level(logging.INFO, logger="cloudkit.fulfillment.auth")
    try:
        with pytest.raises(Unauthenticated, match=f"^{REFUSED}$"):
            await authenticator.authenticate(subject)
    finally:
        await authenticator.close()
    assert "HTTP 403" in caplog.text
    assert subject.split(".")[1] not in caplog.text and subject.split(".")[2] not in caplog.text
