"""The JWT authenticator against the real local issuer (discovery and JWKS over HTTPS): good
tokens give the caller of their claims; every bad token is the same bare 401, the reason is
logged, and the token never is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloudkit.fulfillment.auth import REFUSED, AuthSettings, TokenAuthenticator, build_authenticator
from cloudkit.fulfillment.auth import oidc as oidc_module
from cloudkit.fulfillment.caller import Caller, Unauthenticated
from cloudkit.local.issuer.keys import ensure_signing_key, key_id, load_signing_key
from cloudkit.local.issuer.server import IssuerHandle, start_issuer
from cloudkit.local.issuer.tokens import mint

pytestmark = pytest.mark.stack


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[IssuerHandle]:
    handle = await start_issuer(tmp_path / "issuer")
    yield handle
    await handle.stop()


@pytest.fixture
async def authenticator(issuer: IssuerHandle) -> AsyncIterator[TokenAuthenticator]:
    settings = AuthSettings(
        issuers=(issuer.url,),
        audience=issuer.info.audience,
        issuer_ca_file=Path(issuer.info.ca_file),
    )
    built = build_authenticator(settings)
    yield built
    await built.close()


def _claims(issuer: IssuerHandle, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer.url,
        "aud": issuer.info.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "organization": "acme",
        "preferred_username": "alice",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(issuer: IssuerHandle, **changes: Any) -> str:
    key = load_signing_key(Path(issuer.info.ca_file).parent)
    return jwt.encode(
        _claims(issuer, **changes), key, algorithm="ES256", headers={"kid": key_id(key)}
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(issuer: IssuerHandle) -> str:
    key = load_signing_key(Path(issuer.info.ca_file).parent)
    # PyJWT's annotations want a key even for "none", which ignores it.
    no_key: Any = None
    return jwt.encode(_claims(issuer), no_key, algorithm="none", headers={"kid": key_id(key)})


def _tampered_signature(issuer: IssuerHandle) -> str:
    header, payload, signature = _signed(issuer).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0x01
    return f"{header}.{payload}.{_b64(bytes(raw))}"


def _tampered_payload(issuer: IssuerHandle) -> str:
    header, _, signature = _signed(issuer).split(".")
    other = _b64(json.dumps(_claims(issuer, organization="globex")).encode())
    return f"{header}.{other}.{signature}"


def _unknown_key(issuer: IssuerHandle) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(issuer), stranger, algorithm="ES256", headers={"kid": "stranger"})


def _other_key_known_kid(issuer: IssuerHandle) -> str:
    own = load_signing_key(Path(issuer.info.ca_file).parent)
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(issuer), stranger, algorithm="ES256", headers={"kid": key_id(own)})


def _hs256_with_public_key(issuer: IssuerHandle) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public key (PEM, and the
    JWK's JSON), which anyone can read from the JWKS."""
    own = load_signing_key(Path(issuer.info.ca_file).parent)
    secret = own.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id(own)}).encode())
    payload = _b64(json.dumps(_claims(issuer)).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


BAD_TOKENS: dict[str, Callable[[IssuerHandle], str]] = {
    "expired": lambda i: _signed(i, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "not yet valid": lambda i: _signed(i, nbf=int(time.time()) + 3600),
    "wrong audience": lambda i: _signed(i, aud="someone-else"),
    "no audience": lambda i: _signed(i, aud=None),
    "no expiry": lambda i: _signed(i, exp=None),
    "wrong issuer": lambda i: _signed(i, iss="https://issuer.example.com"),
    "trusted issuer's url with a path": lambda i: _signed(i, iss=i.url + "/other"),
    "unsigned (alg none)": _unsigned,
    "tampered signature": _tampered_signature,
    "tampered payload": _tampered_payload,
    "unknown key": _unknown_key,
    "another key under a known kid": _other_key_known_kid,
    "HS256 with the public key as secret": _hs256_with_public_key,
    "no organization claim": lambda i: _signed(i, organization=None),
    "no preferred_username claim": lambda i: _signed(i, preferred_username=None),
    "organization not a string": lambda i: _signed(i, organization=["acme"]),
    "not a JWT": lambda i: "not-a-jwt-at-all-0123456789",
    "empty": lambda i: "",
}


async def test_a_minted_token_gives_its_tenant_and_user(
    issuer: IssuerHandle, authenticator: TokenAuthenticator
) -> None:
    token = mint(Path(issuer.info.ca_file).parent, tenant="acme", user="alice")
    assert await authenticator.authenticate(token) == Caller(user="alice", tenant="acme")
    other = mint(Path(issuer.info.ca_file).parent, tenant="globex")
    assert await authenticator.authenticate(other) == Caller(user="globex", tenant="globex")


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_a_bad_token_is_a_bare_401_with_the_reason_logged_without_the_token(
    case: str,
    issuer: IssuerHandle,
    authenticator: TokenAuthenticator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = BAD_TOKENS[case](issuer)
    caplog.set_level(logging.INFO, logger="cloudkit.fulfillment.auth")
    with pytest.raises(Unauthenticated) as refused:
        await authenticator.authenticate(token)
    assert str(refused.value) == REFUSED
    lines = [record.getMessage() for record in caplog.records]
    assert any("bearer token refused: " in line for line in lines), lines
    # No 12 characters of the token in a row (a header alone is not secret, but any longer
    # quote of the token is a leak).
    windows = {token[start : start + 12] for start in range(len(token) - 11)}
    for line in lines:
        assert not [window for window in windows if window in line], f"{case}: token logged"


async def test_unknown_key_ids_fetch_the_key_set_at_most_once_per_interval(
    issuer: IssuerHandle, authenticator: TokenAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[str] = []
    original = oidc_module.IssuerKeyCache._fetch

    async def counting(self: oidc_module.IssuerKeyCache, url: str) -> Any:
        fetches.append(url)
        return await original(self, url)

    monkeypatch.setattr(oidc_module.IssuerKeyCache, "_fetch", counting)
    await authenticator.authenticate(_signed(issuer))
    for _ in range(20):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(_unknown_key(issuer))
    assert fetches == [issuer.url]


async def test_a_new_key_of_the_issuer_is_found_by_refreshing_on_its_kid(
    issuer: IssuerHandle, authenticator: TokenAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key rotation: the issuer's key is replaced; the cached key set does not have the new
    kid, so the authenticator re-reads it (the interval is zeroed: the subject is the refresh,
    not its bound)."""
    monkeypatch.setattr(oidc_module, "REFRESH_INTERVAL_S", 0.0)
    issuer_dir = Path(issuer.info.ca_file).parent
    assert (await authenticator.authenticate(mint(issuer_dir, tenant="acme"))).tenant == "acme"
    (issuer_dir / "signing.key").unlink()
    ensure_signing_key(issuer_dir)
    assert (await authenticator.authenticate(mint(issuer_dir, tenant="acme"))).tenant == "acme"


async def test_an_issuer_that_is_not_configured_is_not_asked(
    issuer: IssuerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[str] = []

    async def counting(self: oidc_module.IssuerKeyCache, url: str) -> Any:
        fetches.append(url)
        return {}

    monkeypatch.setattr(oidc_module.IssuerKeyCache, "_fetch", counting)
    authenticator = build_authenticator(AuthSettings(issuers=("https://issuer.example.com",)))
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_signed(issuer))
    assert fetches == []
    await authenticator.close()
