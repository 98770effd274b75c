"""Authentication, the first step of a request: the bearer token → a user.

Two kinds of token, as the subset of kube-apiserver we need: the admin token of the
kubeconfig (user `cloudkit-admin` in `system:masters`) and ServiceAccount tokens issued by
the TokenRequest API. Those are JWTs bound to the ServiceAccount's uid, so deleting the
ServiceAccount revokes them; they are signed with HS256 and a per-state-directory key (upstream
signs with RS256/ES256 and publishes the keys; only this server needs to check them here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cloudkit.local.apiserver.authz import AUTHENTICATED, MASTERS, SA_PREFIX, UserInfo

ADMIN = UserInfo("cloudkit-admin", (MASTERS, AUTHENTICATED))
AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = AUDIENCE
# ServiceAccount uid by (namespace, name), None when there is no such ServiceAccount.
SaLookup = Callable[[str, str], str | None]


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The identity of a ServiceAccount, with the groups upstream gives it."""
    return UserInfo(
        f"{SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        uid,
    )


def parse_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a `system:serviceaccount:NS:NAME` username."""
    if not username.startswith(SA_PREFIX):
        return None
    namespace, sep, name = username[len(SA_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def bearer_token(header: str) -> str | None:
    """kube-apiserver's bearer rule: trimmed, split on single spaces, the scheme in any case,
    the token the second word (anything after it ignored), never empty."""
    if not header.isascii():
        return None
    parts = header.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int  # seconds since the epoch


class Authenticator:
    """Checks bearer tokens and issues ServiceAccount tokens."""

    def __init__(self, admin_token: str, signing_key: bytes, lookup_sa: SaLookup) -> None:
        self._admin = admin_token.encode()
        self._key = signing_key
        self._lookup_sa = lookup_sa

    def authenticate(self, header: str) -> UserInfo | None:
        token = bearer_token(header)
        if token is None:
            return None
        if hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        account = self._service_account(token, (AUDIENCE,))
        return None if account is None else service_account_user(*account[:2])

    def review(self, token: str, audiences: Sequence[str]) -> tuple[UserInfo, list[str]] | None:
        """TokenReview's question: the user of `token` (a ServiceAccount with its uid) and
        which of `audiences` (empty: this server's own) it is valid for; None if invalid."""
        wanted = tuple(audiences) or (AUDIENCE,)
        if hmac.compare_digest(token.encode(), self._admin):
            # Like kube-apiserver's static tokens: valid for the server's own audience only.
            return (ADMIN, [AUDIENCE]) if AUDIENCE in wanted else None
        account = self._service_account(token, wanted)
        if account is None:
            return None
        namespace, name, uid, matched = account
        return service_account_user(namespace, name, uid), matched

    def issue(
        self, namespace: str, name: str, uid: str, expiration_seconds: int, audiences: list[str]
    ) -> IssuedToken:
        now = int(time.time())
        claims = {
            "aud": audiences,
            "exp": now + expiration_seconds,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "sub": f"{SA_PREFIX}{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(self._sign(f"{header}.{payload}"))
        return IssuedToken(f"{header}.{payload}.{signature}", now + expiration_seconds)

    def _sign(self, signed_part: str) -> bytes:
        return hmac.new(self._key, signed_part.encode(), hashlib.sha256).digest()

    def _service_account(
        self, token: str, audiences: Sequence[str]
    ) -> tuple[str, str, str, list[str]] | None:
        """(namespace, name, uid, the `audiences` it is for) of a valid ServiceAccount token."""
        pieces = token.split(".")
        if len(pieces) != 3:
            return None
        try:
            signature = _unb64(pieces[2])
            claims: Any = json.loads(_unb64(pieces[1]))
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(f"{pieces[0]}.{pieces[1]}")):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            return None
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return None
        claimed = claims.get("aud") or []
        matched = [audience for audience in audiences if audience in claimed]
        if not matched:
            return None
        bound = claims.get("kubernetes.io") or {}
        namespace = bound.get("namespace", "")
        sa = bound.get("serviceaccount") or {}
        # Bound to the object: a deleted (or deleted and re-created) ServiceAccount's tokens
        # stop working at once.
        uid = self._lookup_sa(namespace, sa.get("name", ""))
        if uid is None or uid != sa.get("uid"):
            return None
        return namespace, sa["name"], uid, matched
