"""Local API server benchmark: prints one JSON document of figures.

creates/updates per second with 8 concurrent aiohttp clients, the same clients against a
trivial aiohttp handler (the HTTP ceiling, measured in the same run), watch delivery latency
with 100 watchers, and the peak RSS of a server process holding 10,000 objects.

Rates and latencies move with the machine's load; CPU time per request or per event moves
far less, so each figure comes with the CPU milliseconds its process spent: the server's
and the trivial handler's per create (their quotient is the ratio without the noise), and
the server's and this client's per watch event (the client reads all 100 streams on one
core, which puts a floor under the watch latency whatever the server does).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CLIENTS = 8
OPS_PER_CLIENT = 250
WATCHERS = 100
WATCH_EVENTS = 100
RSS_OBJECTS = 10_000
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
BIN = Path(sys.executable).parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`cloudkit apiserver` as a subprocess (so its RSS is its own)."""

    def __init__(self, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "cloudkit"), "apiserver", "--state-dir", str(state_dir), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[-1]
        token = (state_dir / "token").read_text()
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.ssl = ssl.create_default_context(cafile=str(state_dir / "tls.crt"))

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


async def _rate(
    session: aiohttp.ClientSession, requests: list[list[tuple[str, str, Any]]], ctx: Any
) -> float:
    async def client(batch: list[tuple[str, str, Any]]) -> None:
        for method, url, body in batch:
            async with session.request(method, url, json=body, ssl=ctx) as resp:
                await resp.read()
                assert resp.status < 300, (resp.status, await resp.text())

    start = time.perf_counter()
    await asyncio.gather(*(client(b) for b in requests))
    elapsed = time.perf_counter() - start
    return sum(len(b) for b in requests) / elapsed


_TRIVIAL_SERVER = """
import asyncio, ssl, sys
from aiohttp import web

async def handler(request):
    await request.read()
    return web.json_response({"ok": True}, status=201)

async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _start_trivial_server(cert: Path, key: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRIVIAL_SERVER, str(cert), str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"https://127.0.0.1:{proc.stdout.readline().strip()}/x"


async def _ceiling(ctx: ssl.SSLContext, cert: Path, key: Path) -> tuple[float, float]:
    """The same client against a trivial aiohttp handler in its own process, over TLS like
    the API server, so both sides of the ratio pay the same client and transport costs:
    (requests per second, the handler process's CPU ms per request)."""
    proc, url = _start_trivial_server(cert, key)
    try:
        async with aiohttp.ClientSession() as session:
            batches = [
                [("POST", url, {"metadata": {"name": f"c{n}-{i}"}}) for i in range(OPS_PER_CLIENT)]
                for n in range(CLIENTS)
            ]
            cpu_before = cpu_seconds(proc.pid)
            rate = await _rate(session, batches, ctx)
            cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / (CLIENTS * OPS_PER_CLIENT)
            return rate, cpu_ms
    finally:
        proc.terminate()
        proc.wait(10)


async def _throughput(server: Server) -> tuple[float, float, float]:
    """(creates/s, updates/s, the server's CPU ms per create)."""
    url = server.url + CONFIGMAPS
    async with aiohttp.ClientSession(headers=server.headers) as session:
        creates = [
            [
                ("POST", url, {"metadata": {"name": f"c{n}-{i}"}, "data": {"v": "0"}})
                for i in range(OPS_PER_CLIENT)
            ]
            for n in range(CLIENTS)
        ]
        cpu_before = cpu_seconds(server.proc.pid)
        create_rate = await _rate(session, creates, server.ssl)
        create_cpu_ms = (
            (cpu_seconds(server.proc.pid) - cpu_before) * 1000 / (CLIENTS * OPS_PER_CLIENT)
        )
        updates = [
            [
                ("PUT", f"{url}/c{n}-{i}", {"metadata": {"name": f"c{n}-{i}"}, "data": {"v": "1"}})
                for i in range(OPS_PER_CLIENT)
            ]
            for n in range(CLIENTS)
        ]
        update_rate = await _rate(session, updates, server.ssl)
    return create_rate, update_rate, create_cpu_ms


async def _watch_latency(server: Server) -> tuple[list[float], float, float]:
    """(latencies, the server's and this client's CPU ms per event, 100 deliveries each)."""
    url = server.url + "/api/v1/namespaces/default/configmaps"
    latencies: list[float] = []
    sent: dict[str, float] = {}
    # 100 long-lived watch connections plus the writer: lift aiohttp's 100-connection cap.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=server.headers, connector=connector) as session:
        async with session.get(url, ssl=server.ssl) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        ready = 0
        all_ready = asyncio.Event()

        async def watcher() -> None:
            nonlocal ready
            params = {"watch": "true", "resourceVersion": rv, "labelSelector": "bench=watch"}
            async with session.get(url, params=params, ssl=server.ssl) as resp:
                ready += 1
                if ready == WATCHERS:
                    all_ready.set()
                seen = 0
                while seen < WATCH_EVENTS:
                    line = await resp.content.readline()
                    if not line:
                        return
                    event = json.loads(line)
                    latencies.append(
                        time.perf_counter() - sent[event["object"]["metadata"]["name"]]
                    )
                    seen += 1

        tasks = [asyncio.create_task(watcher()) for _ in range(WATCHERS)]
        await asyncio.wait_for(all_ready.wait(), 30)
        await asyncio.sleep(0.2)  # the watch handlers subscribe right after the headers
        server_before, client_before = cpu_seconds(server.proc.pid), time.process_time()
        for i in range(WATCH_EVENTS):
            name = f"watched-{i}"
            sent[name] = time.perf_counter()
            body = {"metadata": {"name": name, "labels": {"bench": "watch"}}}
            async with session.post(url, json=body, ssl=server.ssl) as resp:
                await resp.read()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        server_ms = (cpu_seconds(server.proc.pid) - server_before) * 1000 / WATCH_EVENTS
        client_ms = (time.process_time() - client_before) * 1000 / WATCH_EVENTS
    return latencies, server_ms, client_ms


async def _fill(server: Server, total: int) -> None:
    url = server.url + CONFIGMAPS
    async with aiohttp.ClientSession(headers=server.headers) as session:
        existing = CLIENTS * OPS_PER_CLIENT + WATCH_EVENTS
        per_client = (total - existing) // CLIENTS + 1
        batches = [
            [
                (
                    "POST",
                    url,
                    {
                        "metadata": {"name": f"fill{n}-{i}", "labels": {"a": "b"}},
                        "data": {"k": "v" * 64},
                    },
                )
                for i in range(per_client)
            ]
            for n in range(CLIENTS)
        ]
        await _rate(session, batches, server.ssl)


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        server = Server(state)
        try:
            # The machine is shared: take the best of a ceiling run before and after the
            # server run so noise cannot flatter the ratio.
            cert, key = state / "tls.crt", state / "tls.key"
            before, before_cpu = await _ceiling(server.ssl, cert, key)
            create_rate, update_rate, create_cpu = await _throughput(server)
            after, after_cpu = await _ceiling(server.ssl, cert, key)
            ceiling, ceiling_cpu = max(before, after), min(before_cpu, after_cpu)
            latencies, watch_server_cpu, watch_client_cpu = await _watch_latency(server)
            latencies.sort()
            await _fill(server, RSS_OBJECTS)
            rss = server.peak_rss_mb()
        finally:
            server.stop()
    return {
        "creates_per_s": round(create_rate, 1),
        "updates_per_s": round(update_rate, 1),
        "http_ceiling_per_s": round(ceiling, 1),
        "ratio_creates_to_ceiling": round(create_rate / ceiling, 3),
        "server_cpu_ms_per_create": round(create_cpu, 3),
        "ceiling_cpu_ms_per_request": round(ceiling_cpu, 3),
        "cpu_ratio_creates_to_ceiling": round(ceiling_cpu / create_cpu, 3),
        "watch_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "watch_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "watch_events_measured": len(latencies),
        "watch_server_cpu_ms_per_event": round(watch_server_cpu, 2),
        "watch_client_cpu_ms_per_event": round(watch_client_cpu, 2),
        "rss_mb_10k": round(rss, 1),
        "transport": "https (loopback, self-signed; kubectl sends tokens only over TLS)",
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
