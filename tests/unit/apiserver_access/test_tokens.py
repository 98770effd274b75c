"""ServiceAccount tokens: issued, checked, bound to the account's uid, expiring, unforgeable."""

from __future__ import annotations

import base64
import json

from cloudkit.local.apiserver.authn import ADMIN, AUDIENCE, Authenticator

ACCOUNTS = {("ops", "bot"): "uid-1"}


def _authn(key: bytes = b"k" * 32) -> Authenticator:
    return Authenticator("admin-token", key, lambda ns, name: ACCOUNTS.get((ns, name)))


def test_admin_token_and_bearer_rules() -> None:
    authn = _authn()
    assert authn.authenticate("Bearer admin-token") == ADMIN
    assert authn.authenticate("bEaReR admin-token trailing") == ADMIN
    assert authn.authenticate("Bearer wrong") is None
    assert authn.authenticate("Basic admin-token") is None
    assert authn.authenticate("") is None


def test_service_account_token_round_trip_and_binding() -> None:
    authn = _authn()
    token = authn.issue("ops", "bot", "uid-1", 3600, [AUDIENCE]).token
    user = authn.authenticate(f"Bearer {token}")
    assert user is not None and user.name == "system:serviceaccount:ops:bot"
    assert "system:serviceaccounts:ops" in user.groups

    ACCOUNTS[("ops", "bot")] = "uid-2"  # deleted and re-created: old tokens die with it
    try:
        assert authn.authenticate(f"Bearer {token}") is None
    finally:
        ACCOUNTS[("ops", "bot")] = "uid-1"


def test_rejected_tokens() -> None:
    authn = _authn()
    expired = authn.issue("ops", "bot", "uid-1", -1, [AUDIENCE]).token
    assert authn.authenticate(f"Bearer {expired}") is None
    other_audience = authn.issue("ops", "bot", "uid-1", 3600, ["vault"]).token
    assert authn.authenticate(f"Bearer {other_audience}") is None
    other_key = _authn(b"x" * 32).issue("ops", "bot", "uid-1", 3600, [AUDIENCE]).token
    assert authn.authenticate(f"Bearer {other_key}") is None

    # A re-signed-by-nobody change of the claims (another account) is refused.
    header, payload, signature = authn.issue("ops", "bot", "uid-1", 3600, [AUDIENCE]).token.split(
        "."
    )
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kubernetes.io"]["namespace"] = "kube-system"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert authn.authenticate(f"Bearer {header}.{forged}.{signature}") is None
    assert authn.authenticate("Bearer a.b.c") is None
    assert authn.authenticate("Bearer not-a-jwt") is None
