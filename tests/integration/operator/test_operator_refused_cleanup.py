"""A deprovision launch that AAP refuses for good keeps the instance until cleanup really ran.

The operator is configured with a deprovision template AAP does not have (renamed, say). The
deletion must not drop the finalizer: the status and a Warning event name the template and
AAP's answer, the launch is retried with the failed-cleanup back-off, and once the template
exists in AAP the deletion completes without anyone touching the resource.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.local.automation.main import start_automation_service
from cloudkit.local.stack.ports import free_port
from tests.harness.operator_process import (
    DEPROVISION_TEMPLATE,
    PLAYBOOKS,
    PROVISION_TEMPLATE,
    AutomationService,
    Cluster,
    LoopThread,
    healthy,
    operator_env,
    start_operator,
    stop_operator,
    wait_until,
)

PROVISION_SECONDS_ANNOTATION = "test.cloudkit.io/provision-seconds"
pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

RENAMED = "cloudkit deprovision (renamed)"
LIFECYCLE_TIMEOUT_S = 180.0


def _templates(*, with_renamed: bool) -> list[dict[str, Any]]:
    entries = [
        (PROVISION_TEMPLATE, "provision.yml"),
        (DEPROVISION_TEMPLATE, "deprovision.yml"),
    ]
    if with_renamed:
        entries.append((RENAMED, "deprovision.yml"))
    return [
        {
            "name": name,
            "kind": "job_template",
            "playbook": str(PLAYBOOKS / playbook),
            "inventory": "localhost,",
        }
        for name, playbook in entries
    ]


@pytest.fixture(scope="module")
def aap_state(
    loop_thread: LoopThread, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AutomationService, Path, int]]:
    previous = os.environ.get("K8S_AUTH_KUBECONFIG")
    os.environ["K8S_AUTH_KUBECONFIG"] = str(cluster.handle.kubeconfig)
    state = tmp_path_factory.mktemp("automation-refusing")
    port = free_port()
    handle = loop_thread.run(
        start_automation_service(state, _templates(with_renamed=False), port=port)
    )
    holder = AutomationService(handle)
    try:
        yield holder, state, port
    finally:
        loop_thread.run(holder.handle.stop())
        if previous is None:
            os.environ.pop("K8S_AUTH_KUBECONFIG", None)
        else:
            os.environ["K8S_AUTH_KUBECONFIG"] = previous


def test_refused_deprovision_keeps_the_finalizer_until_the_template_exists(
    loop_thread: LoopThread,
    cluster: Cluster,
    aap_state: tuple[AutomationService, Path, int],
    tmp_path: Path,
) -> None:
    automation, state, port = aap_state
    env = operator_env(
        cluster,
        automation,
        CLOUDKIT_AAP_DEPROVISION_TEMPLATE=RENAMED,
        CLOUDKIT_RETRY_BACKOFF_MIN="1s",
        CLOUDKIT_RETRY_BACKOFF_MAX="2s",
    )
    operator = start_operator(env, tmp_path / "operator.log")
    try:
        wait_until(lambda: healthy(operator), timeout=60, what="operator health")
        name = "refused-cleanup"
        cluster.create(name, {PROVISION_SECONDS_ANNOTATION: "0"})
        wait_until(
            lambda: (cluster.get(name) or {}).get("status", {}).get("phase") == "Ready",
            timeout=LIFECYCLE_TIMEOUT_S,
            what="Ready",
        )
        cluster.delete(name)

        def refused() -> dict[str, Any] | None:
            job = ((cluster.get(name) or {}).get("status") or {}).get("deprovisionJob") or {}
            return job if job.get("state") == "Failed" else None

        job = wait_until(refused, timeout=60, what="the refused deprovision launch")
        assert repr(RENAMED) in job["message"] and "deletion is blocked" in job["message"]
        assert job["blockDeletionOnFailure"] is True

        def retried_twice() -> bool:
            reasons = [e.reason for e in cluster.events(name)]
            return reasons.count("DeprovisionLaunchFailed") >= 2 and "DeprovisionRetry" in reasons

        wait_until(retried_twice, timeout=60, what="two refused launches, retried")
        warning = next(e for e in cluster.events(name) if e.reason == "DeprovisionLaunchFailed")
        assert warning.type == "Warning" and repr(RENAMED) in warning.message
        still = cluster.get(name)
        assert still is not None and names.OPERATOR_FINALIZER in still["metadata"]["finalizers"]
        assert not [j for j in automation.jobs() if j.get("name") == RENAMED]

        # The template is created in AAP (here: the service restarts with it); nobody touches
        # the resource, and the next retry completes the deletion.
        loop_thread.run(automation.handle.stop())
        automation.handle = loop_thread.run(
            start_automation_service(state, _templates(with_renamed=True), port=port)
        )
        wait_until(
            lambda: cluster.get(name) is None, timeout=LIFECYCLE_TIMEOUT_S, what="instance gone"
        )
        launched = [j for j in automation.jobs() if j.get("name") == RENAMED and j.get("status")]
        assert len(launched) == 1 and launched[0]["status"] == "successful"
    finally:
        stop_operator(operator)
