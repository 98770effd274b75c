"""AapClient transport behaviour against small real servers that misbehave on purpose.

The local automation service is well-behaved; proxies and gateways are not. These servers play
the gateway: 5xx then recovery, hangs, HTML bodies, 429, redirects, echoed headers, TLS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloudkit.providers.aap import AapClient, AapProvider, wire
from cloudkit.providers.base import (
    ProviderInvalidResponse,
    ProviderRateLimited,
    ProviderUnavailable,
)

pytestmark = pytest.mark.stack

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JOB = {"id": 1, "type": "job", "status": "running"}


@dataclass
class Gateway:
    """A programmable server: `answers` are consumed in order, then `default` answers."""

    url: str = ""
    answers: list[Handler] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown so hanging handlers end and the server shuts down at once."""

    async def default(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(JOB)


async def _serve(
    gateway: Gateway, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        gateway.seen.append(f"{request.method} {request.path}")
        handler = gateway.answers.pop(0) if gateway.answers else gateway.default
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    state = Gateway()
    runner, port = await _serve(state)
    state.url = f"http://127.0.0.1:{port}/api/controller"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def status(code: int, text: str = "", **headers: str) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=text, headers=headers)

    return answer


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AapClient]:
    delays: list[float] = []

    async def no_sleep(delay: float) -> None:
        delays.append(delay)  # backoff is computed but not waited: the test stays fast

    made = AapClient(gateway.url, "tok", attempts=3, sleep=no_sleep, timeout=0.5)
    try:
        yield made
    finally:
        await made.close()


JOB_ID = wire.AapJobId.parse("1")


async def test_reads_are_retried_through_5xx(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(503), status(502)]
    reading = await client.job(JOB_ID)
    assert reading.message == "running"
    assert gateway.seen == ["GET /api/controller/v2/jobs/1/"] * 3


async def test_reads_give_up_after_the_attempts(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(503)] * 3
    with pytest.raises(ProviderUnavailable) as caught:
        await client.job(JOB_ID)
    assert caught.value.status == 503
    assert len(gateway.seen) == 3


async def test_launches_are_never_retried(gateway: Gateway, client: AapClient) -> None:
    async def template(request: web.Request) -> web.StreamResponse:
        return web.json_response({"count": 1, "results": [{"id": 4, "name": "p"}]})

    gateway.answers = [template, status(503)]
    with pytest.raises(ProviderUnavailable):
        await client.launch("p", {})
    assert gateway.seen == [
        "GET /api/controller/v2/job_templates/",
        "POST /api/controller/v2/job_templates/4/launch/",
    ]


async def test_cancels_are_retried(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(500), status(202)]
    assert (await client.cancel(JOB_ID)).value == "requested"
    assert len(gateway.seen) == 2


async def test_a_hanging_server_times_out_as_unavailable(
    gateway: Gateway, client: AapClient
) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await gateway.release.wait()
        return web.json_response(JOB)

    gateway.answers = [hang, hang, hang]
    with pytest.raises(ProviderUnavailable):
        await client.job(JOB_ID)


async def test_an_html_body_is_an_invalid_response(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(200, "<html>login</html>", **{"Content-Type": "text/html"})]
    with pytest.raises(ProviderInvalidResponse):
        await client.job(JOB_ID)


async def test_429_is_rate_limited_with_retry_after(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(429, "slow down", **{"Retry-After": "12"})]
    with pytest.raises(ProviderRateLimited) as caught:
        await client.job(JOB_ID)
    assert caught.value.retry_after == 12.0
    assert len(gateway.seen) == 1  # the core waits, not the client


async def test_redirects_are_not_followed(gateway: Gateway, client: AapClient) -> None:
    gateway.answers = [status(301, **{"Location": "/elsewhere/"})]
    with pytest.raises(ProviderInvalidResponse) as caught:
        await client.job(JOB_ID)
    assert "/elsewhere/" in str(caught.value)
    assert len(gateway.seen) == 1


async def test_token_echoed_by_a_proxy_is_redacted(gateway: Gateway) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text=f"bad gateway: {request.headers['Authorization']}")

    gateway.answers = [echo]
    token = "s3cret-token-abc"
    provider = AapProvider(gateway.url, token, "p", "d", attempts=1)
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.provision_status("1")
        assert token not in str(caught.value) and token not in repr(caught.value)
        assert "<redacted>" in str(caught.value)
    finally:
        await provider.close()


# --- TLS ----------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_verified_by_default_with_an_optional_ca_bundle(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    state = Gateway()
    runner, port = await _serve(state, context)
    url = f"https://127.0.0.1:{port}/api"
    try:
        strict = AapClient(url, "tok", attempts=1)
        with pytest.raises(ProviderUnavailable):
            await strict.job(JOB_ID)
        await strict.close()
        for trusting in (
            AapClient(url, "tok", attempts=1, ca_bundle=str(cert)),
            AapClient(url, "tok", attempts=1, verify_tls=False),
        ):
            assert (await trusting.job(JOB_ID)).message == "running"
            await trusting.close()
    finally:
        await runner.cleanup()
