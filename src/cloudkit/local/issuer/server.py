"""The issuer's HTTPS endpoints on loopback: OIDC discovery and the JWKS, nothing else.

HTTPS rather than plain HTTP on loopback, so the fulfillment service checks the local issuer
through the same path as a real one (an `https://` issuer URL, a CA file to trust); the
certificate is made like the API server's, once per state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cloudkit.local.apiserver import tls
from cloudkit.local.issuer.keys import (
    ALGORITHM,
    ensure_signing_key,
    load_signing_key,
    public_jwk,
)
from cloudkit.local.issuer.tokens import DEFAULT_AUDIENCE, IssuerInfo
from cloudkit.local.private import private_dir

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"


def discovery_document(issuer_url: str) -> dict[str, Any]:
    """The subset of OpenID Connect Discovery 1.0 a token checker reads."""
    return {
        "issuer": issuer_url,
        "jwks_uri": issuer_url + JWKS_PATH,
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "organization", "preferred_username"],
    }


@dataclass
class IssuerHandle:
    url: str
    info: IssuerInfo
    _runner: web.AppRunner

    async def stop(self) -> None:
        await self._runner.cleanup()


def _app(issuer_dir: Path, url_box: list[str]) -> web.Application:
    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(discovery_document(url_box[0]))

    async def keys(_: web.Request) -> web.Response:
        # Read per request: replacing DIR/signing.key rotates the key without a restart.
        return web.json_response({"keys": [public_jwk(load_signing_key(issuer_dir))]})

    app = web.Application()
    app.router.add_get(DISCOVERY_PATH, discovery)
    app.router.add_get(JWKS_PATH, keys)
    return app


async def start_issuer(
    issuer_dir: Path, *, port: int = 0, host: str = "127.0.0.1", audience: str = DEFAULT_AUDIENCE
) -> IssuerHandle:
    """Listen, then publish DIR/issuer.json (url, audience, CA file) for token minting."""
    private_dir(issuer_dir)
    ensure_signing_key(issuer_dir)
    cert, tls_key = tls.ensure_certificate(issuer_dir)
    url_box = [""]  # the URL is known once bound (port 0 picks one)
    runner = web.AppRunner(_app(issuer_dir, url_box), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.server_context(cert, tls_key))
    await site.start()
    server: Any = site._server
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    shown_host = f"[{host}]" if ":" in host else host
    url_box[0] = f"https://{shown_host}:{bound}"
    info = IssuerInfo(url=url_box[0], audience=audience, ca_file=str(cert.resolve()))
    info.write(issuer_dir)
    return IssuerHandle(url_box[0], info, runner)


async def _serve(issuer_dir: Path, port: int, host: str, audience: str) -> None:
    handle = await start_issuer(issuer_dir, port=port, host=host, audience=audience)
    print(f"issuer listening on {handle.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await handle.stop()
    print("issuer stopped", file=sys.stderr, flush=True)


def run(*, issuer_dir: Path, port: int = 0, host: str = "127.0.0.1", audience: str) -> None:
    """Run until SIGINT/SIGTERM (blocking); used by `cloudkit issuer`."""
    asyncio.run(_serve(issuer_dir, port, host, audience))
