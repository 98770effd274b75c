"""Acknowledged writes survive kill -9 of the server process (SQLite WAL, commit before reply)."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.stack
CLOUDKIT = Path(sys.executable).parent / "cloudkit"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _start(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(CLOUDKIT), "apiserver", "--state-dir", str(state_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return proc, line.split()[-1]


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, url = _start(state)
    token = (state / "token").read_text()
    ctx = ssl.create_default_context(cafile=str(state / "tls.crt"))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    acked: dict[str, int] = {}
    enough = asyncio.Event()

    async with aiohttp.ClientSession(headers=headers) as session:

        async def writer(n: int) -> None:
            for i in range(10_000):
                name = f"w{n}-{i}"
                body = {"metadata": {"name": name}, "data": {"i": str(i)}}
                try:
                    async with session.post(url + CONFIGMAPS, json=body, ssl=ctx) as resp:
                        if resp.status != 201:
                            return
                        obj = await resp.json()
                except (aiohttp.ClientError, ConnectionError):
                    return
                acked[name] = int(obj["metadata"]["resourceVersion"])
                if len(acked) >= 300:
                    enough.set()

        tasks = [asyncio.create_task(writer(n)) for n in range(4)]
        await asyncio.wait_for(enough.wait(), 30)
        proc.send_signal(signal.SIGKILL)
        await asyncio.gather(*tasks)
        proc.wait()

        proc, url = _start(state)
        try:
            async with session.get(url + CONFIGMAPS, ssl=ctx) as resp:
                listed = await resp.json()
            present = {
                o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
                for o in listed["items"]
            }
            missing = [n for n in acked if n not in present]
            assert not missing, f"{len(missing)} acknowledged writes lost"
            assert all(present[n] == rv for n, rv in acked.items())
            async with session.post(
                url + CONFIGMAPS, json={"metadata": {"name": "after"}}, ssl=ctx
            ) as resp:
                after = await resp.json()
            assert int(after["metadata"]["resourceVersion"]) > max(acked.values())
            oldest = min(acked.values())
            params = {"watch": "1", "resourceVersion": str(oldest), "timeoutSeconds": "1"}
            async with session.get(url + CONFIGMAPS, params=params, ssl=ctx) as resp:
                first: Any = json.loads(await resp.content.readline())
            assert first["type"] in ("ADDED", "ERROR")
            if first["type"] == "ERROR":
                assert first["object"]["code"] == 410
            else:
                assert int(first["object"]["metadata"]["resourceVersion"]) > oldest
        finally:
            proc.terminate()
            proc.wait(10)
