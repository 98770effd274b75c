"""The stack's tenant side: the local OIDC issuer and the fulfillment service (SQLite, HTTPS
on loopback), and DIR/fulfillment.json, which tells `cloudkit login --tenant` where they are.

The service trusts the issuer (discovery and JWKS over HTTPS, the issuer's CA) and checks
ServiceAccount tokens with a TokenReview against the stack's API server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cloudkit.local.apiserver.tls import ensure_certificate
from cloudkit.local.issuer.tokens import IssuerInfo
from cloudkit.local.private import private_dir, write_private
from cloudkit.local.stack.procs import (
    START_TIMEOUT_S,
    Child,
    ChildFailed,
    LogSink,
    cloudkit_command,
    spawn,
)

ENDPOINT_FILE = "fulfillment.json"
ISSUER_LISTENING = r"issuer listening on (\S+)"
ADDRESS_FILE = "fulfillment.address"  # written by `cloudkit fulfillment` once it listens


class FulfillmentStartError(RuntimeError):
    """The issuer or the service did not start; the message is for people."""


@dataclass(frozen=True)
class FulfillmentEndpoint:
    """Where a tenant reaches the local fulfillment API and gets tokens for it."""

    address: str
    ca_file: str
    issuer_dir: str
    hub: str = ""
    """The id of the hub records are placed on (the stack's own cluster), once registered."""
    controller_log: str = ""
    """The fulfillment controller's log (it turns records into ComputeInstances)."""

    def write(self, state_dir: Path) -> None:
        tmp = state_dir / (ENDPOINT_FILE + ".tmp")
        write_private(tmp, json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(state_dir / ENDPOINT_FILE)

    @classmethod
    def read(cls, state_dir: Path) -> FulfillmentEndpoint:
        """Raises FileNotFoundError when no stack with a fulfillment service ran there."""
        data = json.loads((state_dir / ENDPOINT_FILE).read_text())
        return cls(
            str(data["address"]),
            str(data["ca_file"]),
            str(data["issuer_dir"]),
            str(data.get("hub") or ""),
            str(data.get("controller_log") or ""),
        )


async def start_fulfillment(
    state_dir: Path,
    *,
    kubeconfig: Path,
    env: Mapping[str, str],
    logs: Path,
    sink: LogSink | None,
    children: list[Child],
    admins: Sequence[str] = (),
) -> FulfillmentEndpoint:
    """Issuer, then service; each appended to `children` as soon as it runs (so a failure
    later still stops it); DIR/fulfillment.json written once the service listens. `admins`
    are the ServiceAccounts (NAMESPACE:NAME) with every tenant and the private API."""
    issuer_dir, service_dir = state_dir / "issuer", private_dir(state_dir / "fulfillment")
    (state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
    issuer = await spawn(
        "issuer",
        cloudkit_command("issuer", "--state-dir", str(issuer_dir), "--port", "0"),
        env=env,
        log_dir=logs,
        sink=sink,
    )
    children.append(issuer)
    await _line(issuer, ISSUER_LISTENING)
    info = IssuerInfo.read(issuer_dir)
    cert, key = ensure_certificate(private_dir(service_dir / "tls"))
    (service_dir / ADDRESS_FILE).unlink(missing_ok=True)
    service = await spawn(
        "fulfillment",
        cloudkit_command(
            "fulfillment",
            "--state-dir",
            str(service_dir),
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
            "--kubeconfig",
            str(kubeconfig),
            *(f"--admin={account}" for account in admins),
        ),
        env=env,
        log_dir=logs,
        sink=sink,
    )
    children.append(service)
    address = await _address(service, service_dir / ADDRESS_FILE)
    endpoint = FulfillmentEndpoint(address, str(cert.resolve()), str(issuer_dir.resolve()))
    endpoint.write(state_dir)
    return endpoint


async def _line(child: Child, pattern: str) -> str:
    regex = re.compile(pattern)
    try:
        return await child.wait_for_line(lambda line: bool(regex.search(line)), START_TIMEOUT_S)
    except TimeoutError as error:
        raise FulfillmentStartError(
            f"{child.name} did not start within {START_TIMEOUT_S:.0f}s"
        ) from error
    except ChildFailed as error:
        raise FulfillmentStartError(str(error)) from error


def _read_address(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


async def _address(child: Child, path: Path) -> str:
    """The service's URL, once it has written its address file (it binds first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not (address := _read_address(path)):
        if child.process.returncode is not None:
            raise FulfillmentStartError(child.describe_exit())
        if loop.time() > deadline:
            raise FulfillmentStartError(_late(child))
        await asyncio.sleep(0.1)
    return address


def _late(child: Child) -> str:
    return f"{child.name} did not start within {START_TIMEOUT_S:.0f}s"
