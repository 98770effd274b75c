"""JWTs of trusted OIDC issuers: each issuer's keys found by discovery, cached, refreshed on
an unknown `kid` (at most once per REFRESH_INTERVAL_S, so a flood of made-up key ids cannot
turn into a flood of requests to the issuer), and the token checked by `jwt_rules`."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from cloudkit.fulfillment.auth import jwt_rules
from cloudkit.fulfillment.auth.jwt_rules import TokenRefused
from cloudkit.fulfillment.caller import Caller

log = logging.getLogger("cloudkit.fulfillment.auth")

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_AGE_S = 300.0  # keys are re-read this often even without an unknown kid (rotation)
REFRESH_INTERVAL_S = 10.0
MAX_KEYS = 100
FETCH_TIMEOUT_S = 10.0


class KeysUnavailable(Exception):
    """The issuer's discovery document or key set could not be read."""


@dataclass
class _IssuerKeys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def parse_key_set(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS by `kid`; keys without a `kid`, of another use, or
    of an algorithm outside jwt_rules.ALGORITHMS are left out."""
    keys: dict[str, jwt.PyJWK] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if isinstance(kid, str) and key.algorithm_name in jwt_rules.ALGORITHMS:
            keys[kid] = key
        if len(keys) >= MAX_KEYS:
            break
    return keys


class IssuerKeyCache:
    """The key sets of trusted issuers, fetched over HTTPS."""

    def __init__(self, issuers: Iterable[str], ca_file: Path | None = None) -> None:
        self._issuers = {issuer: _IssuerKeys() for issuer in issuers}
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._session: aiohttp.ClientSession | None = None

    def trusts(self, issuer: str) -> bool:
        return issuer in self._issuers

    async def key(self, issuer: str, kid: str) -> jwt.PyJWK:
        """The key `kid` of `issuer`; raises TokenRefused when the issuer does not have it."""
        state = self._issuers[issuer]
        now = time.monotonic()
        if kid in state.keys and now - state.fetched_at < MAX_AGE_S:
            return state.keys[kid]
        async with state.lock:
            if now - state.fetched_at >= REFRESH_INTERVAL_S:
                try:
                    state.keys = await self._fetch(issuer)
                    state.fetched_at = time.monotonic()
                except KeysUnavailable as error:
                    log.warning("keys of issuer %s unavailable: %s", issuer, error)
        if kid not in state.keys:
            raise TokenRefused(f"key {kid!r} unknown to issuer {issuer}")
        return state.keys[kid]

    async def _fetch(self, issuer: str) -> dict[str, jwt.PyJWK]:
        discovery = await self._get_json(issuer.rstrip("/") + DISCOVERY_PATH)
        if discovery.get("issuer") != issuer:
            # OIDC Discovery §4.3: the document must name the issuer it was fetched for.
            raise KeysUnavailable("discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise KeysUnavailable("discovery document has no https jwks_uri")
        return parse_key_set(await self._get_json(jwks_uri))

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
            )
        try:
            async with self._session.get(url, ssl=self._ssl) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"GET {url}: HTTP {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise KeysUnavailable(f"GET {url}: {type(error).__name__}: {error}") from None
        if not isinstance(document, dict):
            raise KeysUnavailable(f"GET {url}: not a JSON object")
        return document

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OidcAuthenticator:
    """Checks JWTs of the trusted issuers; raises TokenRefused with the reason."""

    def __init__(self, keys: IssuerKeyCache, audience: str) -> None:
        self._keys = keys
        self._audience = audience

    def trusts(self, issuer: str | None) -> bool:
        return issuer is not None and self._keys.trusts(issuer)

    async def caller(self, token: str, issuer: str) -> Caller:
        jwt_rules.signing_algorithm(token)  # before any key is fetched for it
        kid = jwt_rules.unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise TokenRefused("no key id (kid) in the header")
        key = await self._keys.key(issuer, kid)
        claims = jwt_rules.verify(token, key, issuer=issuer, audience=self._audience)
        return jwt_rules.caller_from_claims(claims)

    async def close(self) -> None:
        await self._keys.close()
