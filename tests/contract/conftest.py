"""Shared contract-test fixtures: running local API servers and a kubectl runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import ApiServerHandle, start_apiserver

BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[ApiServerHandle]:
    """A fresh API server (own state dir and port) per test; bookmarks every 0.5 s."""
    handle = await start_apiserver(tmp_path / "state", bookmark_interval_s=0.5)
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture(scope="session")
async def apiserver_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ApiServerHandle]:
    """One API server shared by a whole test session (tests must use unique names)."""
    handle = await start_apiserver(tmp_path_factory.mktemp("apiserver"), bookmark_interval_s=0.5)
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture(scope="session")
def kube_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Discovery caches are per host:port; keep them out of ~/.kube for every client."""
    path = tmp_path_factory.mktemp("kube-cache")
    old = os.environ.get("KUBECACHEDIR")
    os.environ["KUBECACHEDIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("KUBECACHEDIR", None)
    else:
        os.environ["KUBECACHEDIR"] = old


def make_kubectl(kubeconfig: Path, cache_dir: Path) -> Kubectl:
    def run(
        *args: str, input: str | None = None, timeout: float = 30, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir)]
        result = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.fixture
def kubectl(apiserver: ApiServerHandle, kube_cache_dir: Path) -> Kubectl:
    """Run `.venv/bin/kubectl --kubeconfig <apiserver kubeconfig>`; returns CompletedProcess."""
    return make_kubectl(apiserver.kubeconfig, kube_cache_dir)

