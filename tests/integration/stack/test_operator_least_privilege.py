"""The operator's RBAC is enough and each verb it grants is used: one lifecycle (create → Ready,
restart, delete → gone) under the ServiceAccount of deploy/operator, then the API server's audit
log (every RBAC decision for that account) is replayed against the role minus one
(group, resource, verb) at a time.

A verb is needed when some request the operator really made is allowed with the role and
denied without that verb: that request is the behaviour its removal breaks. The full policy
must allow every logged request, so the replay cannot pass vacuously. The table is printed
(`pytest -s`) and kept in docs/deploying.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloudkit.local.apiserver import authz
from cloudkit.local.apiserver.authn import service_account_user
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.kube import KubeClient, resource_path
from cloudkit.local.stack.operator_account import DEPLOY_DIR, account_documents, service_account
from tests.waiting import until

pytestmark = pytest.mark.stack
DEADLINE_S = 90.0
CI = ("cloudkit.openshift.io", "v1alpha1", "computeinstances")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[StackHandle]:
    # Two replicas, as deploy/operator runs: the standby's requests (it watches the Lease) are
    # part of what the role must allow.
    handle = await start_stack(
        provider="aap",
        state_dir=tmp_path / "state",
        vm_boot_seconds=0.5,
        operator_replicas=2,
        with_fulfillment=False,
        # What is replayed is the operator's own requests: the playbooks' go under another
        # account, so simulated jobs (the same effects on the instance, no Ansible) suffice.
        simulated_jobs={"run_seconds": 0.5},
    )
    try:
        yield handle
    finally:
        await handle.stop()


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await until(check, bool, within=DEADLINE_S, what=what, interval=0.2)


async def _lifecycle(stack: StackHandle) -> None:
    ns = stack.instance_namespace
    path = resource_path(*CI, namespace=ns, name="lp")
    async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
        await kube.create(
            resource_path(*CI, namespace=ns),
            {"apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
             "metadata": {"name": "lp"}, "spec": {"templateID": "cloudkit_templates_ocp_virt_vm"}},
        )  # fmt: skip

        async def phase() -> str | None:
            obj = await kube.get(path) or {}
            return (obj.get("status") or {}).get("phase")

        await eventually(lambda: _equals(phase(), "Ready"), "Ready")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await kube.merge_patch(path, {"spec": {"restartRequestedAt": now}})

        async def restarted() -> bool:
            obj = await kube.get(path) or {}
            return bool((obj.get("status") or {}).get("lastRestartedAt"))

        await eventually(restarted, "restart")
        await kube.delete(path)
        await eventually(lambda: _gone(kube, path), "deletion")


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def _gone(kube: KubeClient, path: str) -> bool:
    return await kube.get(path) is None


def _attributes(entry: dict[str, Any], user: authz.UserInfo) -> authz.Attributes:
    if "path" in entry:
        return authz.Attributes(user, entry["verb"], resource_request=False, path=entry["path"])
    return authz.Attributes(
        user, entry["verb"], api_group=entry["group"], resource=entry["resource"],
        subresource=entry["subresource"], name=entry["name"], namespace=entry["namespace"],
    )  # fmt: skip


def _atomic(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rule split into one rule per (group, resource, verb), so each can be dropped alone."""
    out = []
    for doc in docs:
        if "rules" in doc:
            rules = [
                {**rule, "apiGroups": [group], "resources": [resource], "verbs": [verb]}
                for rule in doc["rules"]
                for group in rule.get("apiGroups") or []
                for resource in rule.get("resources") or []
                for verb in rule.get("verbs") or []
            ]
            doc = {**doc, "rules": rules}
        out.append(doc)
    return out


def _policy(docs: list[dict[str, Any]], drop: tuple[int, int] | None = None) -> authz.Policy:
    kept = [
        {**d, "rules": [r for j, r in enumerate(d["rules"]) if (i, j) != drop]}
        if "rules" in d else d
        for i, d in enumerate(docs)
    ]  # fmt: skip

    def of(kind: str) -> list[dict[str, Any]]:
        return [d for d in kept if d["kind"] == kind]

    return authz.policy_from_objects(
        of("Role"), of("ClusterRole"), of("RoleBinding"), of("ClusterRoleBinding")
    )


def _behaviour(entry: dict[str, Any]) -> str:
    resource = entry["resource"] + (f"/{entry['subresource']}" if entry["subresource"] else "")
    return f"{entry['verb']} {resource}"


def _read_audit(path: Path, username: str) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["user"] == username]


async def test_each_verb_of_the_operator_role_is_needed(stack: StackHandle) -> None:
    await _lifecycle(stack)
    docs = account_documents(DEPLOY_DIR)
    user = service_account_user(*service_account(docs))
    entries = _read_audit(stack.state_dir / "apiserver" / "audit.jsonl", user.name)
    assert entries, "the operator made no request under its ServiceAccount"
    assert [e for e in entries if not e["allowed"]] == []  # enough: nothing was refused

    requests = [(e, _attributes(e, user)) for e in entries]
    docs = _atomic(docs)
    # The replay must start from a policy that allows everything the operator did: otherwise
    # every drop would "break nothing" (or everything) for reasons of its own.
    full = _policy(docs)
    assert [e for e, attrs in requests if not authz.authorize(full, attrs)[0]] == []
    table: list[tuple[str, str]] = []
    unused: list[str] = []
    for i, doc in enumerate(docs):
        for j, rule in enumerate(doc.get("rules") or []):
            policy = _policy(docs, (i, j))
            broken = [e for e, attrs in requests if not authz.authorize(policy, attrs)[0]]
            group, resource, verb = rule["apiGroups"][0], rule["resources"][0], rule["verbs"][0]
            label = f"{doc['kind']} {group or 'core'}/{resource} {verb}"
            if broken:
                table.append((label, _behaviour(broken[0])))
            else:  # every verb must be needed by the lifecycle: an unused one goes
                unused.append(label)
    print("\nverb → a request of the lifecycle denied without it")
    for label, behaviour in table:
        print(f"  {label} → {behaviour}")
    assert unused == [], "\n".join(unused)
