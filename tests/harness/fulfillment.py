"""The real `cloudkit fulfillment` process for tests: started, found, killed, restarted.

Tokens come from the local issuer (`cloudkit issuer`, its own process), as a tenant's `cloudkit
token` would get them; the service checks them through discovery and JWKS over HTTPS like any
issuer's. The store is SQLite in the service's state directory unless a `database` URL is given
(the kill -9 test also runs on PostgreSQL). Both are processes, so one pair can serve a whole
test session whatever event loop each test runs in; tests stay apart by tenant (`Tenant.fresh`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.local.apiserver.tls import ensure_certificate
from cloudkit.local.issuer.tokens import IssuerInfo, mint
from tests.waiting import until

CLOUDKIT = Path(sys.executable).parent / "cloudkit"
ADDRESS_FILE = "fulfillment.address"
PUBLIC = "/api/fulfillment/v1/compute_instances"
PRIVATE = "/api/private/v1/compute_instances"
HUBS = "/api/private/v1/hubs"
EVENTS = "/api/events/v1/events"
PRIVATE_EVENTS = "/api/private/v1/events/watch"
# The admin ServiceAccount the tests' service trusts (NAMESPACE:NAME), as the controller's.
ADMIN = "fulfillment-system:controller"
START_WITHIN_S = 90  # two cores shared by many: importing the service alone can take seconds


def _exited(process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if process.poll() is not None:
        raise AssertionError(f"{what} exited ({process.returncode}): {log.read_text()[-3000:]}")


@dataclass
class Issuer:
    """The local OIDC issuer process; `token` mints for any tenant."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    info: IssuerInfo | None = None

    @property
    def log_path(self) -> Path:
        return self.directory.parent / "issuer.log"

    def spawn(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [str(CLOUDKIT), "issuer", "--state-dir", str(self.directory)],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )

    async def start(self) -> None:
        self.spawn()
        log = self.log_path

        async def read() -> IssuerInfo | None:
            assert self.process is not None
            _exited(self.process, log, "issuer")
            try:
                return IssuerInfo.read(self.directory)
            except (FileNotFoundError, json.JSONDecodeError):
                return None

        self.info = await until(read, bool, within=START_WITHIN_S, what="issuer.json")

    def stop(self) -> None:
        _terminate(self.process)

    def token(self, tenant: str, user: str | None = None) -> str:
        return mint(self.directory, tenant=tenant, user=user)


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class FulfillmentService:
    """One service process and how to reach it; `restart` keeps its state dir and database."""

    state_dir: Path
    issuer: Issuer
    database: str | None = None
    extra_args: Sequence[str] = ()
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir / "fulfillment.log"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "tls" / "tls.crt"

    def token(self, tenant: str, user: str | None = None) -> str:
        return self.issuer.token(tenant, user)

    def args(self) -> list[str]:
        info = self.issuer.info
        assert info is not None, "start the issuer first"
        (self.state_dir / "tls").mkdir(parents=True, exist_ok=True)
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
            info.url,
            "--audience",
            info.audience,
            "--issuer-ca",
            info.ca_file,
        ]
        if self.database is not None:
            args += ["--db", self.database]
        if self.url:  # a restart keeps the address its clients know
            args += ["--port", self.url.rsplit(":", 1)[1]]
        return [*args, *self.extra_args]

    def spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / ADDRESS_FILE).unlink(missing_ok=True)  # a killed process leaves it
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )

    async def start(self) -> None:
        self.spawn()
        address = self.state_dir / ADDRESS_FILE

        async def read() -> str:
            assert self.process is not None
            _exited(self.process, self.log_path, "fulfillment")
            return address.read_text().strip() if address.exists() else ""

        self.url = await until(read, bool, within=START_WITHIN_S, what="fulfillment.address")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        _terminate(self.process)

    async def restart(self) -> None:
        """kill -9, then start again on the same port with the same state."""
        self.kill()
        await self.start()

    def session(self, token: str | None) -> aiohttp.ClientSession:
        """An HTTP client trusting the service's certificate, sending `token` as a bearer."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return aiohttp.ClientSession(
            base_url=self.url,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    def tenant(self, prefix: str) -> Tenant:
        """A tenant no other test uses (its name starts with `prefix`), with its own client."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return Tenant(name, self.session(self.token(name, user=f"{name}-user")))


@dataclass
class Tenant:
    """One tenant's client on the public API."""

    name: str
    http: aiohttp.ClientSession

    @property
    def user(self) -> str:
        return f"{self.name}-user"

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, path, **kwargs) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return answer.status, text

    async def create(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {"metadata": {"name": name}, "spec": {"template": "small", **spec}}
        status, created = await self.call("POST", PUBLIC, json=body)
        assert status == 200, created
        return dict(created)

    async def close(self) -> None:
        await self.http.close()


def service_account_token(kubeconfig: Path, account: str) -> str:
    """A token of ServiceAccount `NAMESPACE:NAME` (created with its namespace if missing)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from tests.harness.kube_clients import api_client, body, filled

    namespace, name = account.split(":")
    core = client.CoreV1Api(api_client(kubeconfig))
    for create in (
        lambda: core.create_namespace(body({"metadata": {"name": namespace}})),
        lambda: core.create_namespaced_service_account(
            namespace, body({"metadata": {"name": name}})
        ),
    ):
        try:
            create()
        except ApiException as exc:
            if exc.status != 409:
                raise
    issued = core.create_namespaced_service_account_token(name, namespace, body({"spec": {}}))
    return str(filled(issued.status, "the TokenRequest's status").token)


async def wait_line(stream: aiohttp.ClientResponse, within: float = 30) -> dict[str, Any]:
    """The next event of a stream (one JSON line); fails if none comes within the deadline.
    Empty lines (the private stream's heartbeat) are skipped."""
    async with asyncio.timeout(within):
        while True:
            line = await stream.content.readline()
            assert line, "the stream ended"
            if line.strip():
                return dict(json.loads(line))


@contextmanager
def serving(directory: Path, kubeconfig: Path, admin: str) -> Iterator[FulfillmentService]:
    """An issuer and a service in `directory` that check ServiceAccount tokens against the
    cluster of `kubeconfig`, with `admin` (a ServiceAccount's user name) as their admin."""
    issuer = Issuer(directory / "issuer")
    asyncio.run(issuer.start())
    service = FulfillmentService(
        directory / "fulfillment",
        issuer,
        extra_args=("--kubeconfig", str(kubeconfig), "--admin", admin),
    )
    try:
        asyncio.run(service.start())
        yield service
    finally:
        service.stop()
        issuer.stop()
