"""Shared contract-test fixtures: running local API servers and a kubectl runner."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudkit.local.apiserver.main import ApiServerHandle, new_event_loop, start_apiserver
from cloudkit.local.apiserver.store import CHANGE_LOG_WINDOW

BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


class ServerThread:
    """Runs an API server on its own event loop in a thread, so blocking tests (subprocess
    kubectl, kopf, sync clients) never stall it."""

    def __init__(self, state_dir: Path, *, change_log_window: int = CHANGE_LOG_WINDOW) -> None:
        self.loop = new_event_loop()  # the loop `cloudkit apiserver` runs on
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_apiserver(
                state_dir, bookmark_interval_s=0.5, change_log_window=change_log_window
            ),
            self.loop,
        )
        self.handle: ApiServerHandle = future.result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.handle.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def serving(
    state_dir: Path, *, change_log_window: int = CHANGE_LOG_WINDOW
) -> Iterator[ApiServerHandle]:
    """An API server on its own thread while the block runs (a short change log makes resource
    versions expire, as a compacting kube-apiserver does)."""
    server = ServerThread(state_dir, change_log_window=change_log_window)
    try:
        yield server.handle
    finally:
        server.stop()


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServerHandle]:
    """A fresh API server (own state dir and port) per test; bookmarks every 0.5 s."""
    with serving(tmp_path / "state") as handle:
        yield handle


@pytest.fixture(scope="session")
def apiserver_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerHandle]:
    """One API server shared by a whole test session (tests must use unique names)."""
    server = ServerThread(tmp_path_factory.mktemp("apiserver"))
    try:
        yield server.handle
    finally:
        server.stop()


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


@pytest.fixture
def kubectl_session(apiserver_session: ApiServerHandle, kube_cache_dir: Path) -> Kubectl:
    """Like `kubectl`, against the session-wide server."""
    return make_kubectl(apiserver_session.kubeconfig, kube_cache_dir)
