"""Operators started with settings of their own, on one stack whose own operator is stopped first
(each test's operator acts alone; `tests.harness.operators` starts it as the stack starts its
own, under deploy/operator's ServiceAccount).

## The EDA provider
`cloudkit operator` with the EDA provider. The webhook endpoint here only records what it
receives (the real rulebook has its own contract test); the test then plays the playbook's
part on the resource, which is how EDA reports completion: the automation finalizer and the
reconciled-config-version annotation. The stack (`tests.harness.operators`) gives the API
server and the operator's command; its own AAP operator is stopped, so the EDA one acts alone.

## A read-only root filesystem
The operator on a read-only root filesystem, as the Deployment runs it
(`readOnlyRootFilesystem: true`): in a private mount namespace whose root is remounted
read-only, with its ServiceAccount's token and CA mounted (read-only) where a pod has them, the
in-cluster configuration from KUBERNETES_SERVICE_HOST/PORT, and cwd, HOME and TMPDIR pointing at
0555 directories. One instance goes to Ready and is deleted (AAP direct) with nothing written.

A mount namespace needs CAP_SYS_ADMIN: the test makes it inside a user namespace (root there,
the caller's own uid outside), so it runs without root. Where the kernel refuses user
namespaces (sysctls, AppArmor's restriction of unprivileged ones) it falls back to a plain mount
namespace as root; only a non-root run on such a kernel is skipped, with a warning in pytest's
summary, since the filesystem outside the 0555 directories (/tmp among them) would be writable.

## A deprovision template AAP does not have
A deprovision launch that AAP refuses for good keeps the instance until cleanup really ran.

The operator is configured with a deprovision template AAP does not have (renamed, say). The
deletion must not drop the finalizer: the status and a Warning event name the template and
AAP's answer, the launch is retried with the failed-cleanup back-off, and once the template
exists in AAP the deletion completes without anyone touching the resource.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from cloudkit.api import names
from tests.harness.operators import (
    START_TIMEOUT_S,
    Cluster,
    Operator,
    OperatorStack,
    assert_service_account,
    healthy,
    stop_operator,
    wait_until,
)
from tests.harness.stack_lab import DEPROVISION_TEMPLATE, NAMESPACE

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]


# --- eda ------------------------------------------------------------------------------------------


@dataclass
class Webhooks:
    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def names(self, endpoint: str) -> list[str]:
        return [body["metadata"]["name"] for path, body in self.received if path == endpoint]


@pytest.fixture(scope="module")
def webhooks(stack: OperatorStack) -> Iterator[Webhooks]:
    recorded = Webhooks("")

    async def receive(request: web.Request) -> web.Response:
        # The operator sends CLOUDKIT_EDA_WEBHOOK_TOKEN as a Bearer header, never in the URL.
        if request.headers.get("Authorization") != "Bearer eda-hook-token" or request.query:
            return web.Response(status=401)
        recorded.received.append((request.match_info["endpoint"], await request.json()))
        return web.json_response({}, status=200)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{endpoint}", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        recorded.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return runner

    runner = stack.loop.run(start())
    yield recorded
    stack.loop.run(runner.cleanup())


def patch_instance(cluster: Cluster, name: str, body: dict[str, Any]) -> None:
    cluster.custom.patch_namespaced_custom_object(
        names.GROUP, names.VERSION, NAMESPACE, names.PLURAL, name, body
    )


def test_eda_provision_and_deprovision(
    stack: OperatorStack, webhooks: Webhooks, tmp_path: Any
) -> None:
    stack.stop_stack_operator()
    cluster = stack.cluster
    env = stack.operator_env(
        CLOUDKIT_PROVISIONING_PROVIDER="eda",
        CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE="",  # all namespaces (kopf is cluster-wide anyway)
        CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK=f"{webhooks.url}/provision",
        CLOUDKIT_COMPUTE_INSTANCE_DELETE_WEBHOOK=f"{webhooks.url}/deprovision",
        CLOUDKIT_EDA_WEBHOOK_TOKEN="eda-hook-token",
    )
    for variable in ("CLOUDKIT_AAP_URL", "CLOUDKIT_AAP_TOKEN_FILE"):
        env.pop(variable)
    running = stack.start_operator(env, tmp_path / "operator-eda.log")
    try:
        wait_until(lambda: healthy(running), timeout=START_TIMEOUT_S, what="operator health")
        name = "eda-instance"
        cluster.create(name)
        wait_until(
            lambda: webhooks.names("provision") == [name], timeout=30, what="provision webhook"
        )
        payload = next(body for path, body in webhooks.received if path == "provision")
        desired = payload["status"]["desiredConfigVersion"]
        assert names.OPERATOR_FINALIZER in payload["metadata"]["finalizers"]

        # What the provisioning playbook does.
        obj = cluster.get(name)
        assert obj is not None
        patch_instance(
            cluster,
            name,
            {
                "metadata": {
                    "finalizers": [*obj["metadata"]["finalizers"], names.AUTOMATION_FINALIZER],
                    "annotations": {names.RECONCILED_CONFIG_VERSION_ANNOTATION: desired},
                }
            },
        )

        def ready() -> dict[str, Any] | None:
            found = cluster.get(name)
            return found if (found or {}).get("status", {}).get("phase") == "Ready" else None

        obj = wait_until(ready, timeout=30, what="phase Ready")
        assert obj["status"]["provisionJob"]["id"].startswith("eda-webhook")

        cluster.delete(name)
        wait_until(
            lambda: webhooks.names("deprovision") == [name], timeout=30, what="deprovision webhook"
        )
        assert cluster.get(name) is not None  # held until the automation says it is done
        # What the deprovisioning playbook does at its end.
        obj = cluster.get(name)
        assert obj is not None
        remaining = [f for f in obj["metadata"]["finalizers"] if f != names.AUTOMATION_FINALIZER]
        patch_instance(cluster, name, {"metadata": {"finalizers": remaining}})
        wait_until(lambda: cluster.get(name) is None, timeout=30, what="deletion")
        assert webhooks.names("deprovision") == [name]
        assert webhooks.names("provision") == [name]
        stop_operator(running)
        assert running.process.returncode == 0, "SIGTERM should stop the operator cleanly"
    finally:
        stop_operator(running)
        print(running.log()[-4000:])


# --- read only ------------------------------------------------------------------------------------

# Where a pod has its ServiceAccount's credentials (kubelet's projected volume).
SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"
# Positional arguments only: $1 the credentials, $2 the working directory, then the command.
POD_FILESYSTEM = f"""set -e
mount -t tmpfs -o mode=0755,size=1m tmpfs /run
mkdir -p {SERVICE_ACCOUNT_DIR}
mount --bind "$1" {SERVICE_ACCOUNT_DIR}
mount -o remount,bind,ro {SERVICE_ACCOUNT_DIR}
mount -o remount,ro /run
mount -o remount,bind,ro /
cd "$2"
shift 2
exec "$@"
"""
BIN = Path(sys.executable).parent
WROTE_TO_DISK = ("Read-only file system", "No usable temporary directory", "Permission denied")


def _pod_credentials(kubeconfig: Path, directory: Path) -> tuple[str, str]:
    """Token, CA and namespace files of the kubeconfig's account, as kubelet mounts them;
    the API server's (host, port)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    directory.mkdir()
    (directory / "token").write_text(config["users"][0]["user"]["token"])
    (directory / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (directory / "namespace").write_text("cloudkit-operator-system")
    host, port = cluster["server"].removeprefix("https://").rstrip("/").rsplit(":", 1)
    return host, port


def _read_only_dir(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o555)
    return path


MOUNT_NAMESPACE = ["unshare", "--mount", "--propagation", "private"]
USER_AND_MOUNT_NAMESPACE = ["unshare", "--user", "--map-root-user", *MOUNT_NAMESPACE[1:]]
# What POD_FILESYSTEM needs of a namespace: a tmpfs mounted, the root remounted read-only.
CAN_MOUNT = "mount -t tmpfs -o size=1m tmpfs /run && mount -o remount,bind,ro /"


def _private_mount_namespace() -> list[str] | None:
    """unshare's arguments for a mount namespace in which POD_FILESYSTEM works, or None."""
    if shutil.which("unshare") is None:
        return None
    for argv in (USER_AND_MOUNT_NAMESPACE, MOUNT_NAMESPACE):
        if argv is MOUNT_NAMESPACE and os.geteuid() != 0:
            break
        probe = subprocess.run([*argv, "sh", "-c", CAN_MOUNT], capture_output=True, check=False)
        if probe.returncode == 0:
            return argv
    return None


def _start_in_pod(
    namespace: list[str], env: dict[str, str], credentials: Path, cwd: Path, log_path: Path
) -> Operator:
    argv = [*namespace, "sh", "-c", POD_FILESYSTEM, "sh"]
    argv += [str(credentials), str(cwd), str(BIN / "cloudkit"), "operator"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Operator(process, log_path, env)


def _phase(cluster: Cluster, name: str) -> str | None:
    obj: dict[str, Any] | None = cluster.get(name)
    return str((obj or {}).get("status", {}).get("phase") or "") if obj else None


def test_an_instance_lives_and_dies_on_a_read_only_root(
    stack: OperatorStack, tmp_path: Path
) -> None:
    namespace = _private_mount_namespace()
    if namespace is None:
        why = (
            "NOT PROVEN: the read-only root test needs a private mount namespace (util-linux "
            "unshare, and user namespaces allowed or root)"
        )
        warnings.warn(why, stacklevel=1)  # shown in the warnings summary, even with -q
        pytest.skip(why)
    stack.stop_stack_operator()  # the pod's operator acts alone
    cluster = stack.cluster
    # The same identity as the stack's operator (checked through its kubeconfig).
    assert_service_account(cluster.operator_kubeconfig)
    host, port = _pod_credentials(cluster.operator_kubeconfig, tmp_path / "serviceaccount")
    home, work, tmp = (_read_only_dir(tmp_path / d) for d in ("home", "work", "tmp"))
    env = stack.operator_env(HOME=str(home), TMPDIR=str(tmp))
    env.pop("KUBECONFIG", None)  # in-cluster, as in the Deployment (no --kubeconfig either)
    env |= {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

    operator = _start_in_pod(
        namespace, env, tmp_path / "serviceaccount", work, tmp_path / "operator.log"
    )
    name = "read-only-root"
    try:
        wait_until(lambda: healthy(operator), timeout=START_TIMEOUT_S, what="operator health")
        cluster.create(name)
        wait_until(lambda: _phase(cluster, name) == "Ready", timeout=60, what="phase Ready")
        cluster.delete(name)
        wait_until(lambda: _phase(cluster, name) is None, timeout=60, what="the instance gone")
        assert healthy(operator)
    finally:
        stop_operator(operator)
    log = operator.log()
    assert not [line for line in log.splitlines() if any(w in line for w in WROTE_TO_DISK)], log
    assert not [p for d in (home, work, tmp) for p in d.iterdir()]


# --- refused cleanup ------------------------------------------------------------------------------

RENAMED = "cloudkit deprovision (renamed)"
LIFECYCLE_TIMEOUT_S = 180.0


def add_renamed_template(entries: list[dict[str, Any]]) -> None:
    """The deprovision template, once more under the name the operator is configured with."""
    deprovision = next(e for e in entries if e["name"] == DEPROVISION_TEMPLATE)
    entries.append({**copy.deepcopy(deprovision), "name": RENAMED})


def test_refused_deprovision_keeps_the_finalizer_until_the_template_exists(
    stack: OperatorStack, tmp_path: Path
) -> None:
    stack.stop_stack_operator()  # the misconfigured operator acts alone
    cluster, automation = stack.cluster, stack.automation
    env = stack.operator_env(
        CLOUDKIT_AAP_DEPROVISION_TEMPLATE=RENAMED,
        CLOUDKIT_RETRY_BACKOFF_MIN="1s",
        CLOUDKIT_RETRY_BACKOFF_MAX="2s",
    )
    operator = stack.start_operator(env, tmp_path / "operator.log")
    try:
        wait_until(lambda: healthy(operator), timeout=START_TIMEOUT_S, what="operator health")
        name = "refused-cleanup"
        cluster.create(name)
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
        stack.edit_templates(add_renamed_template)
        wait_until(
            lambda: cluster.get(name) is None, timeout=LIFECYCLE_TIMEOUT_S, what="instance gone"
        )
        launched = [j for j in automation.jobs() if j.get("name") == RENAMED and j.get("status")]
        assert len(launched) == 1 and launched[0]["status"] == "successful"
    finally:
        stop_operator(operator)
