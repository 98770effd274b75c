"""The local API server's CPU per request kind, with the watchers a lifecycle has.

Starts `cloudkit apiserver` (a subprocess: its CPU is its own), installs the ComputeInstance
CRD, opens `--watchers` watches of the instances (the operator's, the VM simulator's and a
benchmark's in a stack) and runs the requests of an instance's lifecycle against `--n`
instances, one kind at a time with 4 clients: create, 3 status updates each (the operator's
status PUTs, with a condition list that grows), a merge patch (an annotation), a JSON patch
adding a finalizer, a GET, the DELETE (pending on the finalizer) and the JSON patch removing
the finalizer (the object goes). For each kind, the server's utime + stime (/proc) over the
phase divided by its requests: CPU milliseconds per request, every watch delivery included.
The watchers read every event (they count them: the run checks each saw every change).

    .venv/bin/python benchmarks/apiserver_kinds.py [--n 300] [--watchers 3]

To compare two trees in the same window, run both with this script:
`PYTHONPATH=OLD/src .venv/bin/python benchmarks/apiserver_kinds.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.api.crd import crd_manifest

BIN = Path(sys.executable).parent
CLIENTS = 4
STATUS_UPDATES = 3
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"templateID": "bench_template", "cores": 1, "memoryGiB": 1},
    }


def _status(step: int) -> dict[str, Any]:
    conditions = [
        {"type": f"Step{i}", "status": "True", "reason": "Done", "message": "m" * 40,
         "lastTransitionTime": "2026-12-07T00:00:00Z"}
        for i in range(step + 1)
    ]  # fmt: skip
    return {"phase": "Progressing", "conditions": conditions}


class Watcher:
    def __init__(self) -> None:
        self.events = 0


async def _watch(session: aiohttp.ClientSession, url: str, ctx: Any, watcher: Watcher) -> None:
    async with session.get(url, params={"watch": "true"}, ssl=ctx) as resp:
        async for _line in resp.content:
            watcher.events += 1


async def _phase(
    session: aiohttp.ClientSession,
    ctx: Any,
    requests: list[tuple[str, str, Any, str]],
) -> None:
    queue = list(reversed(requests))

    async def client() -> None:
        while queue:
            method, url, body, content_type = queue.pop()
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": content_type}
            async with session.request(method, url, data=data, headers=headers, ssl=ctx) as r:
                await r.read()
                assert r.status < 300, (method, url, r.status, await r.text())

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


def start_server(state: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(BIN / "cloudkit"), "apiserver", "--state-dir", str(state), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[-1]


async def run(
    proc: subprocess.Popen[str], url: str, state: Path, n: int, watchers: int
) -> dict[str, Any]:
    token = (state / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(state / "tls.crt"))
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        crds = f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with session.post(crds, json=crd_manifest(), ssl=ctx) as r:
            assert r.status < 300, await r.text()
        coll = f"{url}/apis/{names.API_VERSION}/namespaces/default/{names.PLURAL}"
        while True:  # until the CRD is served
            async with session.get(coll, ssl=ctx) as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.05)
        seen = [Watcher() for _ in range(watchers)]
        tasks = [asyncio.create_task(_watch(session, coll, ctx, w)) for w in seen]
        names_ = [f"ci-{i}" for i in range(n)]
        current: dict[str, Any] = {}
        fin = [{"op": "add", "path": "/metadata/finalizers", "value": ["bench/hold"]}]
        unfin = [{"op": "remove", "path": "/metadata/finalizers"}]
        phases: list[tuple[str, Any]] = [
            ("create", lambda: [("POST", coll, _instance(m), "application/json")
                                for m in names_]),
            ("status_put", None),
            ("merge_patch", lambda: [("PATCH", f"{coll}/{m}",
                                      {"metadata": {"annotations": {"a": "b"}}}, MERGE_PATCH)
                                     for m in names_]),
            ("json_patch_finalizer", lambda: [("PATCH", f"{coll}/{m}", fin, JSON_PATCH)
                                              for m in names_]),
            ("get", lambda: [("GET", f"{coll}/{m}", None, "application/json")
                             for m in names_]),
            ("delete_pending", lambda: [("DELETE", f"{coll}/{m}", None, "application/json")
                                        for m in names_]),
            ("json_patch_release", lambda: [("PATCH", f"{coll}/{m}", unfin, JSON_PATCH)
                                            for m in names_]),
        ]  # fmt: skip
        out: dict[str, Any] = {}
        changes = 0
        for kind, make in phases:
            if kind == "status_put":
                cpu = 0.0
                for step in range(STATUS_UPDATES):
                    reqs = []
                    for m in names_:  # read first (not counted): the PUT needs the RV
                        async with session.get(f"{coll}/{m}", ssl=ctx) as r:
                            current[m] = await r.json()
                        body = {**current[m], "status": _status(step)}
                        reqs.append(("PUT", f"{coll}/{m}/status", body, "application/json"))
                    start = cpu_seconds(proc.pid)
                    await _phase(session, ctx, reqs)
                    cpu += cpu_seconds(proc.pid) - start
                out[kind] = round(cpu * 1000 / (n * STATUS_UPDATES), 3)
                changes += n * STATUS_UPDATES
                continue
            reqs = make()
            start = cpu_seconds(proc.pid)
            await _phase(session, ctx, reqs)
            out[kind] = round((cpu_seconds(proc.pid) - start) * 1000 / len(reqs), 3)
            if kind != "get":
                changes += len(reqs)
        expected = changes
        deadline = asyncio.get_running_loop().time() + 60
        while any(w.events < expected for w in seen):
            assert asyncio.get_running_loop().time() < deadline, [w.events for w in seen]
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "benchmark": "apiserver_kinds",
        "n": n,
        "watchers": watchers,
        "server_cpu_ms_per_request": out,
        "events_per_watcher": expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--watchers", type=int, default=3)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ck-apikinds-"))
    proc, url = start_server(state)
    try:
        print(json.dumps(asyncio.run(run(proc, url, state, args.n, args.watchers)), indent=2))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
