"""The pure rules of authentication: JWT checks with RS256 and ES256 keys, key sets, settings,
and a TokenReview's answer → caller."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cloudkit.fulfillment.auth.jwt_rules import TokenRefused, caller_from_claims, verify
from cloudkit.fulfillment.auth.oidc import parse_key_set
from cloudkit.fulfillment.auth.service_accounts import AcceptedTokens, caller_from_review
from cloudkit.fulfillment.auth.settings import AuthSettings
from cloudkit.fulfillment.caller import Caller

ISSUER = "https://issuer.example.com"
AUDIENCE = "cloudkit-fulfillment"


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "organization": "acme"}
    claims["preferred_username"] = "alice"
    claims.update(changes)
    return claims


def test_rs256_and_es256_tokens_verify_with_their_jwks_keys() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = parse_key_set(
        {
            "keys": [
                {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "r"},
                {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "e"},
            ]
        }
    )
    for kid, key, algorithm in (("r", rsa_key, "RS256"), ("e", ec_key, "ES256")):
        token = jwt.encode(_claims(), key, algorithm=algorithm, headers={"kid": kid})
        claims = verify(token, keys[kid], issuer=ISSUER, audience=AUDIENCE)
        assert caller_from_claims(claims) == Caller(user="alice", tenant="acme")


def test_a_token_whose_algorithm_is_not_its_keys_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "r"}
    token = jwt.encode(_claims(), rsa_key, algorithm="PS256", headers={"kid": "r"})
    with pytest.raises(TokenRefused, match="PS256"):
        verify(token, parse_key_set({"keys": [jwk]})["r"], issuer=ISSUER, audience=AUDIENCE)


def test_a_key_set_keeps_only_signing_keys_of_accepted_algorithms() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {**ec_jwk, "kid": "enc", "use": "enc"},
            {**ec_jwk},  # no kid
            {**ec_jwk, "kid": "ok"},
            "not an object",
        ]
    }
    assert list(parse_key_set(document)) == ["ok"]
    assert parse_key_set({"keys": "nope"}) == {} and parse_key_set([]) == {}


@pytest.mark.parametrize(
    "settings",
    [
        {"issuers": ("http://127.0.0.1:1",)},
        {"audience": ""},
        {"admin_accounts": frozenset({"just-a-name"})},
        {"admin_accounts": frozenset({"system:serviceaccount:ns"})},
    ],
)
def test_settings_refuse_what_cannot_be_trusted(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        AuthSettings(**settings)


def test_admin_accounts_are_named_as_a_token_review_names_them() -> None:
    settings = AuthSettings(
        admin_accounts=frozenset({"ops:controller", "system:serviceaccount:ops:feedback"})
    )
    assert settings.admin_usernames == {
        "system:serviceaccount:ops:controller",
        "system:serviceaccount:ops:feedback",
    }


def _review(username: str, authenticated: bool = True) -> dict[str, Any]:
    return {"authenticated": authenticated, "user": {"username": username, "groups": []}}


def test_a_service_account_is_a_caller_of_its_namespace() -> None:
    admins = frozenset({"system:serviceaccount:ops:controller"})
    assert caller_from_review(_review("system:serviceaccount:acme:ci"), admins) == Caller(
        user="system:serviceaccount:acme:ci", tenant="acme", admin=False
    )
    admin = caller_from_review(_review("system:serviceaccount:ops:controller"), admins)
    assert admin.admin and admin.tenant == "ops"


@pytest.mark.parametrize(
    "status",
    [
        _review("system:serviceaccount:acme:ci", authenticated=False),
        {"authenticated": True},
        _review("cloudkit-admin"),  # a cluster user is not a tenant
        _review("system:serviceaccount:acme"),
        {},
    ],
)
def test_anything_but_an_authenticated_service_account_is_refused(status: dict[str, Any]) -> None:
    with pytest.raises(TokenRefused):
        caller_from_review(status, frozenset())


def test_accepted_tokens_expire_and_the_oldest_go_beyond_the_size() -> None:
    now = [0.0]
    accepted = AcceptedTokens(ttl_s=10.0, size=2, clock=lambda: now[0])
    a, b, c = (Caller(user=f"u-{n}", tenant=f"t-{n}", admin=False) for n in "abc")
    accepted.put("token-a", a)
    accepted.put("token-b", b)
    assert accepted.get("token-a") == a and accepted.get("token-b") == b
    assert accepted.get("token-c") is None
    accepted.put("token-c", c)  # beyond the size: the oldest (a) goes
    assert accepted.get("token-a") is None and accepted.get("token-c") == c
    now[0] = 10.0
    assert accepted.get("token-b") is None and accepted.get("token-c") is None
