"""Running the real AWX clients (the `awx` CLI from awxkit, the awx.awx collection) in tests.

Both are subprocesses pointed at a running automation service the way a user points them at
AWX: CONTROLLER_HOST (the server, without /api) and CONTROLLER_OAUTH_TOKEN. Every run has a
deadline; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cloudkit.local.automation import AutomationHandle

BIN = Path(sys.executable).parent
DEADLINE_S = 240.0
"""A deadline for a hung client, not a speed claim: the collection's play (several awx.awx
module runs) took over 60 s on a loaded two-core machine. Below pytest's 300 s per test."""


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str


def controller_env(automation: AutomationHandle, token: str | None = None) -> dict[str, str]:
    """The caller's environment without any controller settings of its own, plus ours."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_", "AWX"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["CONTROLLER_HOST"] = automation.url.removesuffix("/api")
    env["CONTROLLER_OAUTH_TOKEN"] = automation.token if token is None else token
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


async def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def awx(automation: AutomationHandle, *args: str, token: str | None = None) -> Run:
    """`awx <args>` with colour off unless asked (its output is then plain to assert on)."""
    colour = [] if any(a.startswith("--conf.color") for a in args) else ["--conf.color", "false"]
    return await run([str(BIN / "awx"), *colour, *args], controller_env(automation, token))
