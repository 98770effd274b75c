"""Which tokens the fulfillment service trusts: OIDC issuers and their audience, the cluster
whose TokenReview checks ServiceAccount tokens, and which accounts are admins. Plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AUDIENCE = "cloudkit-fulfillment"


@dataclass(frozen=True)
class AuthSettings:
    """`issuers`: exact issuer URLs (the `iss` claim, and where `/.well-known/openid-configuration`
    is served); `audience`: the `aud` a JWT must carry; `issuer_ca_file`: a CA bundle to trust
    for the issuers' HTTPS beside the system's; `kubeconfig`: the cluster for TokenReview
    (`in_cluster=True`: the pod's own account instead; neither: ServiceAccount tokens are
    refused); `admin_accounts`: ServiceAccounts as `NAMESPACE:NAME` or
    `system:serviceaccount:NAMESPACE:NAME`, callers with every tenant and the private API."""

    issuers: tuple[str, ...] = ()
    audience: str = DEFAULT_AUDIENCE
    issuer_ca_file: Path | None = None
    kubeconfig: Path | None = None
    in_cluster: bool = False
    admin_accounts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for issuer in self.issuers:
            if not issuer.startswith("https://"):
                # OIDC Discovery requires https; a key set fetched in the clear could be forged.
                raise ValueError(f"issuers: {issuer!r} is not an https:// URL")
        if not self.audience:
            raise ValueError("audience: must not be empty")
        for account in self.admin_accounts:
            if service_account_name(account) is None:
                raise ValueError(
                    f"admin_accounts: {account!r} is not NAMESPACE:NAME or "
                    "system:serviceaccount:NAMESPACE:NAME"
                )

    @property
    def admin_usernames(self) -> frozenset[str]:
        """The admins as TokenReview names them (`system:serviceaccount:NS:NAME`)."""
        names = (service_account_name(account) for account in self.admin_accounts)
        return frozenset(name for name in names if name is not None)


SA_PREFIX = "system:serviceaccount:"


def service_account_name(account: str) -> str | None:
    """`system:serviceaccount:NS:NAME` for `NS:NAME` or the full form; None if neither."""
    short = account.removeprefix(SA_PREFIX)
    namespace, sep, name = short.partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return f"{SA_PREFIX}{namespace}:{name}"
