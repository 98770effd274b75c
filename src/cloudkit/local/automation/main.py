"""`cloudkit automation`: run the automation service in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from cloudkit.local.automation.service import (
    AutomationHandle,
    start_automation_service,
)

__all__ = ["AutomationHandle", "run", "start_automation_service"]


def run(*, state_dir: Path, templates: Path, port: int = 0, host: str = "127.0.0.1") -> None:
    """Serve until interrupted; running jobs are canceled and reaped before returning."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(state_dir=state_dir, templates=templates, port=port, host=host))


async def _serve(*, state_dir: Path, templates: Path, port: int, host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    handle = await start_automation_service(state_dir, templates, port=port, host=host)
    try:
        # The token itself is never printed (team rule: no secrets in logs).
        print(
            f"automation service: {handle.url}/v2/ (also {handle.controller_url}/v2/)", flush=True
        )
        print(
            f"token: {handle.token_path} (read-only: {state_dir / 'automation-token-read'})",
            flush=True,
        )
        await stop.wait()
    finally:
        await handle.stop()
