"""Test-side HTTP client for the automation service (plain aiohttp, nothing mocked).

`Api.wait_status` polls with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates.yml"
TERMINAL = frozenset({"successful", "failed", "error", "canceled"})


class Api:
    """A thin client for tests: paths are relative to `<url>/v2/`."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    def path(self, path: str) -> str:
        return f"{self.url}/v2/{path}"

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(self.path(path), **kwargs) as response:
            return response.status, await _body(response)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(self.path(path), json=body, **kwargs) as response:
            return response.status, await _body(response)

    async def delete(self, path: str) -> tuple[int, Any]:
        async with self.session.delete(self.path(path)) as response:
            return response.status, await _body(response)

    async def template_id(self, name: str, kind: str = "job_templates") -> int:
        status, body = await self.get(f"{kind}/", params={"name": name})
        assert status == 200 and body["count"] == 1, body
        return int(body["results"][0]["id"])

    async def launch(self, name: str, body: Any = None, kind: str = "job_templates") -> Any:
        template = await self.template_id(name, kind)
        status, launched = await self.post(f"{kind}/{template}/launch/", body or {})
        assert status == 201, launched
        return launched

    async def wait_status(
        self,
        job_id: int,
        statuses: frozenset[str] | set[str] = TERMINAL,
        *,
        collection: str = "jobs",
        within_s: float = 30.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while True:
            status, job = await self.get(f"{collection}/{job_id}/")
            assert status == 200, job
            if job["status"] in statuses:
                return dict(job)
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {within_s}s")
            await asyncio.sleep(0.05)


async def _body(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    if response.content_type == "application/json" and text:
        return await response.json()
    return text


def processes_with(text: str) -> list[int]:
    """Pids whose command line contains `text` (proof that nothing was left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def exists(path: str) -> bool:
    return Path(path).exists()


def slow_vars(tmp_path: Path) -> dict[str, str]:
    # A unique sleep length lets the test find (and rule out) its own module process.
    return {"marker": str(tmp_path / "marker"), "sleep_s": f"30.{random.randrange(10**6):06d}"}


async def wait_sleeping(api: Api, job_id: int, within_s: float = 20.0) -> None:
    """Wait until the long task has started, so the cancel lands in the middle of it."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        _, events = await api.get(f"jobs/{job_id}/job_events/", params={"event": "runner_on_start"})
        if events["count"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the long task never started")


async def wait_process(text: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not processes_with(text):
        assert time.monotonic() < deadline, f"no process running {text!r}"
        await asyncio.sleep(0.05)
