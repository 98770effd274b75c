"""The automation service's state is private to its owner whatever the umask: its directory,
tokens, database and WAL files, and the directory holding each job's variables."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import aiohttp
import pytest

from cloudkit.local.automation import start_automation_service
from tests.contract.automation.automation_client import TEMPLATES, Api

pytestmark = pytest.mark.stack


async def test_state_is_private_under_umask_0(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old_umask = os.umask(0)
    try:
        handle = await start_automation_service(state, TEMPLATES)
        try:
            headers = {"Authorization": f"Bearer {handle.token}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                api = Api(session, handle.url)
                job = (await api.launch("ok"))["id"]
                await api.wait_status(job)
            top = [state, *state.iterdir()]
        finally:
            await handle.stop()
    finally:
        os.umask(old_umask)
    names = {p.name for p in top}
    assert {"automation-token", "automation-token-read", "jobs"} <= names
    assert {"automation.sqlite3", "automation.sqlite3-wal", "automation.sqlite3-shm"} <= names
    exposed = [
        f"{stat.S_IMODE(p.stat().st_mode):04o} {p.name}"
        for p in top
        if p.exists() and p.stat().st_mode & 0o077
    ]
    assert exposed == []
