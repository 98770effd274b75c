"""The real `cloudkit fulfillment` process for tests: started, found, killed, restarted.

Tokens come from the local issuer (cloudkit.local.issuer) running in the test's event loop, as
a tenant's `cloudkit login` would get them; the service checks them through discovery and JWKS
over HTTPS like any issuer's. The store is SQLite in the service's state directory unless a
`database` URL is given (the kill -9 test also runs on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cloudkit.local.issuer.server import IssuerHandle
from cloudkit.local.issuer.tokens import mint

from cloudkit.local.apiserver.tls import ensure_certificate
from tests.waiting import until

CLOUDKIT = Path(sys.executable).parent / "cloudkit"
ADDRESS_FILE = "fulfillment.address"
PUBLIC = "/api/fulfillment/v1/compute_instances"
PRIVATE = "/api/private/v1/compute_instances"
HUBS = "/api/private/v1/hubs"
EVENTS = "/api/events/v1/events"
PRIVATE_EVENTS = "/api/private/v1/events/watch"


@dataclass
class FulfillmentService:
    """One service process and how to reach it; `restart` keeps its state dir and database."""

    state_dir: Path
    issuer: IssuerHandle
    database: str | None = None
    extra_args: Sequence[str] = ()
    url: str = ""
    process: asyncio.subprocess.Process | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir / "fulfillment.log"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "tls" / "tls.crt"

    def token(self, tenant: str, user: str | None = None) -> str:
        return mint(Path(self.issuer.info.ca_file).parent, tenant=tenant, user=user)

    def args(self) -> list[str]:
        cert, key = ensure_certificate(self.state_dir / "tls")
        args = [
            str(CLOUDKIT),
            "fulfillment",
            "--state-dir",
            str(self.state_dir),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--issuer",
            self.issuer.url,
            "--audience",
            self.issuer.info.audience,
            "--issuer-ca",
            self.issuer.info.ca_file,
        ]
        if self.database is not None:
            args += ["--db", self.database]
        return [*args, *self.extra_args]

    async def start(self) -> None:
        address = self.state_dir / ADDRESS_FILE
        address.unlink(missing_ok=True)  # a killed process leaves its old one behind
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args(), stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )

        async def read() -> str:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(f"fulfillment exited: {self.log_path.read_text()[-2000:]}")
            return address.read_text().strip() if address.exists() else ""

        self.url = await until(read, bool, within=60, what="fulfillment address file")

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            await self.kill()

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    def session(self, token: str | None) -> aiohttp.ClientSession:
        """An HTTP client trusting the service's certificate, sending `token` as a bearer."""
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return aiohttp.ClientSession(
            base_url=self.url,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=60),
        )


@dataclass
class Tenant:
    """One tenant's client on the public API."""

    name: str
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, path, **kwargs) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return answer.status, text

    async def create(self, name: str, **spec: Any) -> dict[str, Any]:
        status, body = await self.call(
            "POST", PUBLIC, json={"metadata": {"name": name}, "spec": {"template": "small", **spec}}
        )
        assert status == 200, body
        return dict(body)


async def started(
    state_dir: Path,
    issuer: IssuerHandle,
    *,
    database: str | None = None,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[FulfillmentService]:
    """For fixtures: a started service, stopped (SIGTERM, then SIGKILL) afterwards."""
    service = FulfillmentService(state_dir, issuer, database, extra_args)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
