"""Bearer tokens → callers: JWTs of trusted OIDC issuers, Kubernetes ServiceAccount tokens
through a TokenReview, chosen per token by its (unverified) `iss`; `build_authenticator` makes
the service's Authenticator from AuthSettings.

Every refusal is the same bare `Unauthenticated` for the caller; the reason goes to one log
line, which never contains the token.
"""

from __future__ import annotations

import logging

from cloudkit.fulfillment.auth import jwt_rules
from cloudkit.fulfillment.auth.jwt_rules import TokenRefused
from cloudkit.fulfillment.auth.oidc import IssuerKeyCache, OidcAuthenticator
from cloudkit.fulfillment.auth.service_accounts import ServiceAccountAuthenticator, TokenReviewer
from cloudkit.fulfillment.auth.settings import AuthSettings
from cloudkit.fulfillment.caller import Caller, Unauthenticated

__all__ = ["AuthSettings", "TokenAuthenticator", "build_authenticator"]

log = logging.getLogger("cloudkit.fulfillment.auth")

REFUSED = "invalid bearer token"  # all the caller ever learns


class TokenAuthenticator:
    """The service's Authenticator: a JWT whose `iss` is a trusted issuer is checked against
    that issuer's keys; any other token goes to the cluster's TokenReview (when configured)."""

    def __init__(
        self, oidc: OidcAuthenticator | None, service_accounts: ServiceAccountAuthenticator | None
    ) -> None:
        self._oidc = oidc
        self._service_accounts = service_accounts

    async def authenticate(self, token: str) -> Caller:
        try:
            return await self._caller(token)
        except TokenRefused as refused:
            log.info("bearer token refused: %s", _without(str(refused), token))
            raise Unauthenticated(REFUSED) from None

    async def _caller(self, token: str) -> Caller:
        if not token:
            raise TokenRefused("empty token")
        issuer = jwt_rules.unverified_issuer(token)
        if issuer is not None and self._oidc is not None and self._oidc.trusts(issuer):
            return await self._oidc.caller(token, issuer)
        if self._service_accounts is not None:
            return await self._service_accounts.caller(token)
        raise TokenRefused("issuer not trusted")

    async def close(self) -> None:
        for part in (self._oidc, self._service_accounts):
            if part is not None:
                await part.close()


def _without(reason: str, token: str) -> str:
    """A reason is built without the token; this guards against a library's message that
    would quote it anyway."""
    for piece in {token, *token.split(".")}:
        if len(piece) >= 8:
            reason = reason.replace(piece, "[token]")
    return reason


def build_authenticator(settings: AuthSettings) -> TokenAuthenticator:
    """The Authenticator for `settings` (its network clients open lazily; `close()` them)."""
    oidc = None
    if settings.issuers:
        keys = IssuerKeyCache(settings.issuers, settings.issuer_ca_file)
        oidc = OidcAuthenticator(keys, settings.audience)
    service_accounts = None
    if settings.kubeconfig is not None or settings.in_cluster:
        reviewer = TokenReviewer(settings.kubeconfig, in_cluster=settings.in_cluster)
        service_accounts = ServiceAccountAuthenticator(reviewer, settings.admin_usernames)
    return TokenAuthenticator(oidc, service_accounts)
