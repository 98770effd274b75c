"""Starting and stopping the local API server: state directory, token, kubeconfig, signals."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import uvloop
import yaml
from aiohttp import web

from cloudkit.local.apiserver import tls
from cloudkit.local.apiserver.access import Access
from cloudkit.local.apiserver.app import ApiServerApp
from cloudkit.local.apiserver.cluster import Cluster
from cloudkit.local.apiserver.resources import Registry
from cloudkit.local.apiserver.store import CHANGE_LOG_WINDOW, Store
from cloudkit.local.apiserver.wire import ServerConfig
from cloudkit.local.private import open_private_log, private_dir, write_private

CONTEXT = "cloudkit-local"


@dataclass
class ApiServerHandle:
    """A running server: where it listens, how to authenticate, and how to stop it."""

    url: str
    token: str
    kubeconfig: Path
    ca_cert: Path
    _runner: web.AppRunner = field(repr=False)
    _store: Store = field(repr=False)
    _audit: TextIO = field(repr=False)

    async def stop(self) -> None:
        self._store.close_watchers()
        await self._runner.cleanup()
        self._store.close()
        self._audit.close()


def _prepare_state_dir(state_dir: Path, token: str | None) -> str:
    """Create the directory (0700); reuse DIR/token unless a token is given, else make one
    (0600)."""
    private_dir(state_dir)
    path = state_dir / "token"
    if token is None and path.exists():
        token = path.read_text().strip() or None
    if token is None:
        token = secrets.token_urlsafe(32)
    write_private(path, token)
    return token


def _signing_key(state_dir: Path) -> bytes:
    """The key ServiceAccount tokens are signed with (DIR/sa-signing.key, 0600): kept, so
    tokens issued before a restart stay valid."""
    path = state_dir / "sa-signing.key"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip().encode()
    key = secrets.token_urlsafe(48)
    write_private(path, key)
    return key.encode()


def write_kubeconfig(path: Path, url: str, token: str, ca_cert: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_cert.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    write_private(path, yaml.safe_dump(config, sort_keys=False))


async def start_apiserver(
    state_dir: Path,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    bookmark_interval_s: float = 30.0,
    change_log_window: int = CHANGE_LOG_WINDOW,
) -> ApiServerHandle:
    """Open (or create) the state in `state_dir`, listen, and write DIR/kubeconfig.
    `change_log_window`: how many changes a watch may resume across (older ones are 410)."""
    token = _prepare_state_dir(state_dir, token)
    cert, key = tls.ensure_certificate(state_dir)
    store = Store(state_dir / "apiserver.db", window=change_log_window)
    cluster = Cluster(store, Registry())
    audit = open_private_log(state_dir / "audit.jsonl")
    access = Access(store, token, _signing_key(state_dir), audit)
    server = ApiServerApp(
        cluster, ServerConfig(token=token, bookmark_interval_s=bookmark_interval_s), access
    )
    runner = web.AppRunner(server.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.server_context(cert, key))
    await site.start()
    server_obj: Any = site._server
    sockets = server_obj.sockets if server_obj is not None else []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown_host = f"[{host}]" if ":" in host else host
    url = f"https://{shown_host}:{bound}"
    kubeconfig = state_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, url, token, cert)
    return ApiServerHandle(url, token, kubeconfig, cert, runner, store, audit)


async def _serve(state_dir: Path, port: int, host: str) -> None:
    handle = await start_apiserver(state_dir, port=port, host=host)
    # What starting allocated (modules, the registry, the objects loaded from SQLite) mostly
    # lives as long as the process, and what does not is freed by reference counting (JSON
    # trees hold no cycles): frozen, it is left out of every full GC pass, each of which held
    # the event loop 20-60 ms walking it (the modules alone are ~56,000 objects). The
    # collector's thresholds stay CPython's (docs/decisions.md, "The sustained run's pauses").
    gc.freeze()
    print(f"apiserver listening on {handle.url}", flush=True)
    print(f"kubeconfig: {handle.kubeconfig}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await handle.stop()
    print("apiserver stopped", file=sys.stderr, flush=True)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the server runs on: uvloop. On asyncio's own loop a third of the
    server's CPU went to its pure-Python TLS layer and socket writes (every reply, every watch
    event to every watcher); uvloop does both in C. start_apiserver itself runs on any loop."""
    return uvloop.new_event_loop()


def run(*, state_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
    """Run until SIGINT/SIGTERM (blocking); used by `cloudkit apiserver`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(state_dir, port, host))
