"""Revocation takes effect on the next request: the server caches the RBAC policy and its
decisions, and no cache may outlive a change to a Role, a binding or a ServiceAccount."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.apiserver.apiserver_client import Api

pytestmark = pytest.mark.stack

RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "cm-reader"},
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
}
BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "bot-cm-reader"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
    "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}],
}


async def _bot_lists(api: Api, token: str) -> int:
    status, _, _ = await api.call("GET", CONFIGMAPS, token=token)
    return status


async def test_revoked_rbac_and_deleted_service_account_act_on_the_next_request(
    api: Api,
) -> None:
    await api.ok(
        "POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}}
    )
    await api.ok("POST", f"{RBAC}/roles", ROLE)
    await api.ok("POST", f"{RBAC}/rolebindings", BINDING)
    issued = await api.ok(
        "POST", "/api/v1/namespaces/default/serviceaccounts/bot/token", {"spec": {}}
    )
    token = issued["status"]["token"]
    # Twice: the second answer may come from the decision cache.
    assert [await _bot_lists(api, token) for _ in range(2)] == [200, 200]

    await api.ok("DELETE", f"{RBAC}/rolebindings/bot-cm-reader")
    assert await _bot_lists(api, token) == 403

    await api.ok("POST", f"{RBAC}/rolebindings", BINDING)
    assert await _bot_lists(api, token) == 200
    narrowed = {**ROLE, "rules": [{**ROLE["rules"][0], "verbs": ["get"]}]}
    await api.ok("PUT", f"{RBAC}/roles/cm-reader", narrowed)
    assert await _bot_lists(api, token) == 403

    await api.ok("PUT", f"{RBAC}/roles/cm-reader", ROLE)
    assert await _bot_lists(api, token) == 200
    await api.ok("DELETE", "/api/v1/namespaces/default/serviceaccounts/bot")
    assert await _bot_lists(api, token) == 401
