"""Who sent a request: decided once at the edge from its bearer token, then passed down as data.

Pure: no I/O. The authenticators (cloudkit.fulfillment.auth) turn a token into a Caller; the
routes turn a Caller into a Scope for the store, so tenancy is a filter in the store's queries,
never an `if` in a handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cloudkit.fulfillment.store.base import Scope


class Unauthenticated(Exception):
    """The token is missing, malformed, expired, not yet valid, of another audience or issuer,
    unsigned or tampered with. Rendered as a bare 401: the reason goes to the log only."""


@dataclass(frozen=True)
class Caller:
    """An authenticated user or service account.

    `tenant` is where its creates go (a JWT's `organization` claim, a ServiceAccount's
    namespace); `admin` callers see every tenant and may use the private API.
    """

    user: str
    tenant: str
    admin: bool = False

    def scope(self) -> Scope:
        """The records this caller may see and change."""
        return Scope.everything() if self.admin else Scope.of(self.tenant)


class Authenticator(Protocol):
    """Turns a bearer token into a Caller, or raises Unauthenticated."""

    async def authenticate(self, token: str) -> Caller: ...
