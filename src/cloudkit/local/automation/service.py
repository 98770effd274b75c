"""Starting and stopping the automation service: state directory, tokens, templates, server.

`start_automation_service` is the public entry point for tests and for `cloudkit up`; it
returns once the socket listens, and `AutomationHandle.stop()` cancels running jobs, waits for
their processes to be reaped, and closes the store.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from cloudkit.local.automation.executor import Executor
from cloudkit.local.automation.notify import Notifier
from cloudkit.local.automation.planning import TemplateSpec, parse_templates
from cloudkit.local.automation.store import Store
from cloudkit.local.automation.views import Views
from cloudkit.local.automation.web import build_app
from cloudkit.local.private import private_dir, write_private

TOKEN_FILE = "automation-token"
READ_TOKEN_FILE = "automation-token-read"
DB_FILE = "automation.sqlite3"


@dataclass
class AutomationHandle:
    url: str
    """API root without the version, e.g. http://127.0.0.1:PORT/api (clients append v2/...)."""
    token: str
    read_token: str
    state_dir: Path
    _runner: web.AppRunner = field(repr=False)
    _executor: Executor = field(repr=False)
    _notifier: Notifier = field(repr=False)
    _store: Store = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def controller_url(self) -> str:
        """The same API under the AAP 2.5 gateway prefix."""
        return f"{self.url}/controller"

    @property
    def token_path(self) -> Path:
        return self.state_dir / TOKEN_FILE

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # Stop taking requests first, so no launch lands while running jobs are canceled.
        await self._runner.cleanup()
        await self._executor.stop()
        await self._notifier.close()
        self._store.close()


def load_templates(templates: Path | list[dict[str, Any]]) -> list[TemplateSpec]:
    """Read and validate the templates file (or an in-memory list, paths relative to cwd)."""
    if isinstance(templates, list):
        return parse_templates(templates, Path.cwd())
    entries = yaml.safe_load(templates.read_text()) or []
    return parse_templates(entries, templates.resolve().parent)


def ensure_token(path: Path, given: str | None = None) -> str:
    """The given token, else the stored one, else a new one stored with mode 0600."""
    if given:
        return given
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


async def start_automation_service(
    state_dir: Path,
    templates: Path | list[dict[str, Any]],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    workers: int = 4,
) -> AutomationHandle:
    private_dir(state_dir)
    specs = load_templates(templates)
    write_token = ensure_token(state_dir / TOKEN_FILE, token)
    read_token = ensure_token(state_dir / READ_TOKEN_FILE)
    store = Store(state_dir / DB_FILE)
    for spec in specs:
        store.upsert_template(spec.kind, spec.name, spec.to_json())
    notifier = Notifier()
    executor = Executor(store, state_dir=state_dir, workers=workers, notifier=notifier)
    executor.start()
    app = build_app(
        Views(store, executor, workers=workers), token=write_token, read_token=read_token
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = _bound_port(runner) or port
    url_host = f"[{host}]" if ":" in host else host
    return AutomationHandle(
        url=f"http://{url_host}:{bound_port}/api",
        token=write_token,
        read_token=read_token,
        state_dir=state_dir,
        _runner=runner,
        _executor=executor,
        _notifier=notifier,
        _store=store,
    )


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
