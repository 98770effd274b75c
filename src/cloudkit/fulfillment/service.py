"""`cloudkit fulfillment`: check the options, open the store and the authenticator, serve HTTPS.

Options are checked before anything starts, and a wrong one is an error naming the option.
Once the socket is bound, the service's URL is written to `--state-dir`/fulfillment.address
(atomically), so the stack and tests find a port picked with `--port 0`; a clean stop removes
the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudkit.fulfillment.auth import AuthSettings, build_authenticator
from cloudkit.fulfillment.server import bind, create_app, serve
from cloudkit.fulfillment.store import open_store

log = logging.getLogger("cloudkit.fulfillment")

ADDRESS_FILE = "fulfillment.address"
DATABASE_FILE = "fulfillment.db"


class OptionError(ValueError):
    """An option the service cannot start with; the message starts with the option's name."""


@dataclass(frozen=True)
class ServiceOptions:
    database: str
    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    state_dir: Path
    auth: AuthSettings

    @property
    def address_file(self) -> Path:
        return self.state_dir / ADDRESS_FILE


def service_options(
    *,
    state_dir: Path,
    database: str | None,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    issuers: Sequence[str],
    audience: str | None,
    issuer_ca: Path | None,
    kubeconfig: Path | None,
    in_cluster: bool,
    admins: Sequence[str],
) -> ServiceOptions:
    """The options checked together; OptionError names the first wrong one."""
    if not 0 <= port <= 65535:
        raise OptionError(f"--port: {port} is not a port number (0 picks a free one)")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is None:
            raise OptionError(f"{option}: required (the API speaks HTTPS only)")
        if not path.is_file():
            raise OptionError(f"{option}: {path} is not a readable file")
    assert tls_cert is not None and tls_key is not None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise OptionError(f"--tls-cert/--tls-key: not a certificate and its key ({exc})") from None
    for option, path in (("--issuer-ca", issuer_ca), ("--kubeconfig", kubeconfig)):
        if path is not None and not path.is_file():
            raise OptionError(f"{option}: {path} is not a readable file")
    if not issuers and kubeconfig is None and not in_cluster:
        raise OptionError("--issuer: no way to authenticate anyone (give --issuer or --kubeconfig)")
    try:
        auth = AuthSettings(
            issuers=tuple(issuers),
            **({"audience": audience} if audience is not None else {}),
            issuer_ca_file=issuer_ca,
            kubeconfig=kubeconfig,
            in_cluster=in_cluster,
            admin_accounts=frozenset(admins),
        )
    except ValueError as exc:
        raise OptionError(_option_named(str(exc))) from None
    state_dir = state_dir.resolve()
    if database is None:
        database = f"sqlite:///{state_dir / DATABASE_FILE}"
    elif not database.startswith(("sqlite:///", "postgresql://", "postgres://")):
        # The URL is not echoed: it may carry a password.
        raise OptionError("--db: expected sqlite:///PATH or postgresql://…")
    return ServiceOptions(database, host, port, tls_cert, tls_key, state_dir, auth)


# AuthSettings names its fields; the person typed options.
_OPTIONS = {
    "issuers": "--issuer",
    "audience": "--audience",
    "admin_accounts": "--admin",
    "issuer_ca_file": "--issuer-ca",
    "kubeconfig": "--kubeconfig",
}


def _option_named(message: str) -> str:
    field, _, rest = message.partition(":")
    return f"{_OPTIONS[field]}:{rest}" if field in _OPTIONS else message


def _write_address(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(url + "\n")
    os.replace(partial, path)


async def run_service(options: ServiceOptions) -> None:
    """Serve until SIGINT/SIGTERM; the store and the authenticator are closed on the way out."""
    options.state_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(options.database)
    authenticator = build_authenticator(options.auth)
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    url = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    try:
        _write_address(options.address_file, url)
        log.warning("fulfillment API: %s (address in %s)", url, options.address_file)
        await serve(
            create_app(store, authenticator),
            sock,
            tls_cert=options.tls_cert,
            tls_key=options.tls_key,
        )
    finally:
        options.address_file.unlink(missing_ok=True)
        sock.close()
        await authenticator.close()
        await store.close()


def run(options: ServiceOptions) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_service(options))
