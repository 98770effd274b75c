"""The operator on a read-only root filesystem, as the Deployment runs it
(`readOnlyRootFilesystem: true`): in a private mount namespace whose root is remounted
read-only, with its ServiceAccount's token and CA mounted (read-only) where a pod has them, the
in-cluster configuration from KUBERNETES_SERVICE_HOST/PORT, and cwd, HOME and TMPDIR pointing at
0555 directories. One instance goes to Ready and is deleted (AAP direct) with nothing written.

A mount namespace needs CAP_SYS_ADMIN: the test makes it inside a user namespace (root there,
the caller's own uid outside), so it runs without root. Where the kernel refuses user
namespaces (sysctls, AppArmor's restriction of unprivileged ones) it falls back to a plain mount
namespace as root; only a non-root run on such a kernel is skipped, with a warning in pytest's
summary, since the filesystem outside the 0555 directories (/tmp among them) would be writable.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.operator_process import (
    BIN,
    START_TIMEOUT_S,
    AutomationService,
    Cluster,
    Operator,
    assert_service_account,
    healthy,
    operator_env,
    stop_operator,
    wait_until,
)

pytestmark = pytest.mark.stack

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
    cluster: Cluster, automation: AutomationService, tmp_path: Path
) -> None:
    namespace = _private_mount_namespace()
    if namespace is None:
        why = (
            "NOT PROVEN: the read-only root test needs a private mount namespace (util-linux "
            "unshare, and user namespaces allowed or root)"
        )
        warnings.warn(why, stacklevel=1)  # shown in the warnings summary, even with -q
        pytest.skip(why)
    # The same identity as every operator of these tests (checked through its kubeconfig).
    assert_service_account(operator_env(cluster, automation))
    host, port = _pod_credentials(cluster.operator_kubeconfig, tmp_path / "serviceaccount")
    home, work, tmp = (_read_only_dir(tmp_path / d) for d in ("home", "work", "tmp"))
    env = operator_env(cluster, automation, HOME=str(home), TMPDIR=str(tmp))
    del env["KUBECONFIG"]  # in-cluster, as in the Deployment
    env |= {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

    operator = _start_in_pod(
        namespace, env, tmp_path / "serviceaccount", work, tmp_path / "operator.log"
    )
    name = "read-only-root"
    try:
        wait_until(lambda: healthy(operator), timeout=START_TIMEOUT_S, what="operator health")
        cluster.create(name, {"test.cloudkit.io/provision-seconds": "0"})
        wait_until(lambda: _phase(cluster, name) == "Ready", timeout=60, what="phase Ready")
        cluster.delete(name)
        wait_until(lambda: _phase(cluster, name) is None, timeout=60, what="the instance gone")
        assert healthy(operator)
    finally:
        stop_operator(operator)
    log = operator.log()
    assert not [line for line in log.splitlines() if any(w in line for w in WROTE_TO_DISK)], log
    assert not [p for d in (home, work, tmp) for p in d.iterdir()]
