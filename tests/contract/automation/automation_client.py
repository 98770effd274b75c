"""Test-side HTTP client for the automation service (plain aiohttp, nothing mocked).

`Api.wait_status` polls with a deadline (tests.waiting.until) instead of sleeping a fixed time.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import aiohttp

from tests.waiting import until

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

        async def read() -> dict[str, Any]:
            status, job = await self.get(f"{collection}/{job_id}/")
            assert status == 200, job
            return dict(job)

        job: dict[str, Any] = await until(
            read,
            lambda job: job["status"] in statuses,
            within=within_s,
            what=f"job {job_id} in {sorted(statuses)}",
        )
        return job


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

    async def starts() -> int:
        _, events = await api.get(f"jobs/{job_id}/job_events/", params={"event": "runner_on_start"})
        return int(events["count"])

    await until(starts, bool, within=within_s, what="the long task started")


async def wait_process(text: str, within_s: float = 10.0) -> None:

    async def found() -> list[int]:
        return processes_with(text)

    await until(found, bool, within=within_s, what=f"a process running {text!r}")
