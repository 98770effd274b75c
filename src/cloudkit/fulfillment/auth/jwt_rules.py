"""The pure rules of a JWT: which issuer it claims before anything is trusted, the checks a
signed token must pass (signature, algorithm, `exp`, `nbf`, `aud`, `iss`), and claims → Caller.

PyJWT does the cryptography and the registered-claim checks; nothing here is hand-written
crypto. Only RS256 and ES256 are accepted: `none` and the HMAC family are refused before a key
is looked at, which closes the "public key used as HMAC secret" confusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from cloudkit.fulfillment.caller import Caller

ALGORITHMS = ("RS256", "ES256")
TENANT_CLAIM = "organization"
USER_CLAIM = "preferred_username"
LEEWAY_S = 30  # clock skew between the issuer and this service


class TokenRefused(Exception):
    """Why a token is refused: for the log line only, never for the caller (no token in it)."""


def unverified_header(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError as error:
        raise TokenRefused(f"not a JWT ({type(error).__name__})") from None


def unverified_issuer(token: str) -> str | None:
    """The `iss` claim read without checking anything: only to choose which issuer's keys to
    check the token with; None when the token is not a JWT or has no string `iss`."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def signing_algorithm(token: str) -> str:
    """The header's `alg`, if it is one this service accepts."""
    algorithm = unverified_header(token).get("alg")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise TokenRefused(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    return algorithm


def verify(token: str, key: jwt.PyJWK, *, issuer: str, audience: str) -> dict[str, Any]:
    """The claims of a token signed by `key` for `audience` by `issuer`, still valid now."""
    algorithm = signing_algorithm(token)
    if key.algorithm_name != algorithm:
        raise TokenRefused(f"algorithm {algorithm!r} does not match the key's")
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        # PyJWT's messages name the failed check ("Signature has expired", "Invalid audience"),
        # never the token.
        raise TokenRefused(f"{type(error).__name__}: {error}") from None


def caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    """Tenant from `organization`, user from `preferred_username`; both required strings."""
    values = {}
    for claim in (TENANT_CLAIM, USER_CLAIM):
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise TokenRefused(f"claim {claim!r} missing or not a non-empty string")
        values[claim] = value
    return Caller(user=values[USER_CLAIM], tenant=values[TENANT_CLAIM])
