"""Kubernetes ServiceAccount tokens: the cluster checks them (a TokenReview), the answer's
username gives the tenant (the account's namespace), and a configured set of accounts are
admins. The TokenReview call is the one I/O seam; the rule is `caller_from_review`.

An accepted token's caller is kept for `REVIEW_CACHE_TTL_S`, as kube-apiserver's webhook token
authenticator keeps its TokenReviews (`--authentication-token-webhook-cache-ttl`, 2 min there):
the operator's feedback and the service's controller call once per record step, and a review
per call doubled every one of their round trips. A refused token is never kept (a review that
failed is asked again), and the cache is keyed by the token's SHA-256, not the token.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cloudkit.fulfillment.auth.jwt_rules import TokenRefused
from cloudkit.fulfillment.auth.settings import SA_PREFIX
from cloudkit.fulfillment.caller import Caller


def caller_from_review(status: Mapping[str, Any], admins: frozenset[str]) -> Caller:
    """A TokenReview's `status` → the caller; anything but an authenticated ServiceAccount is
    refused (a cluster user's token is not a tenant's)."""
    if status.get("authenticated") is not True:
        raise TokenRefused(f"TokenReview: not authenticated ({status.get('error') or 'no reason'})")
    username = (status.get("user") or {}).get("username")
    if not isinstance(username, str) or not username.startswith(SA_PREFIX):
        raise TokenRefused("TokenReview: not a ServiceAccount")
    namespace, sep, name = username[len(SA_PREFIX) :].partition(":")
    if not sep or not namespace or not name:
        raise TokenRefused("TokenReview: malformed ServiceAccount username")
    return Caller(user=username, tenant=namespace, admin=username in admins)


REVIEW_TIMEOUT_S = 10.0


class TokenReviewer:
    """Posts TokenReviews to a cluster with the service's own credentials (a kubeconfig, or
    the pod's account in a cluster), through kubernetes_asyncio."""

    def __init__(self, kubeconfig: Path | None, *, in_cluster: bool = False) -> None:
        if kubeconfig is None and not in_cluster:
            raise ValueError("kubeconfig: required unless in_cluster")
        self._kubeconfig = kubeconfig
        self._in_cluster = in_cluster
        self._api: Any = None

    async def _client(self) -> Any:
        if self._api is None:
            from kubernetes_asyncio import client, config

            configuration = client.Configuration()
            if self._in_cluster:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                await config.load_kube_config(
                    config_file=str(self._kubeconfig), client_configuration=configuration
                )
            self._api = client.ApiClient(configuration)
        return self._api

    async def review(self, token: str) -> dict[str, Any]:
        """The TokenReview's status; raises TokenRefused when the cluster cannot answer."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        api = client.AuthenticationV1Api(await self._client())
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        try:
            # A deadline (the client has none): an API server that stops answering must not
            # hold the caller's request, and the service's worker, for good.
            answer = await api.create_token_review(body, _request_timeout=REVIEW_TIMEOUT_S)
        except ApiException as error:
            # The exception's text carries the whole response (headers, body, which for a
            # TokenReview that got through echoes the token): only the status goes further.
            raise TokenRefused(f"TokenReview failed: HTTP {error.status}") from None
        except (OSError, TimeoutError) as error:
            raise TokenRefused(f"TokenReview failed: {type(error).__name__}") from None
        status = answer.status
        return dict(status.to_dict()) if status is not None else {}

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None


REVIEW_CACHE_TTL_S = 10.0
"""How long an accepted token's caller is kept: a revoked token may still be accepted this long."""
REVIEW_CACHE_SIZE = 1024


class AcceptedTokens:
    """Callers of recently accepted tokens, by the token's SHA-256, for `ttl_s` seconds each;
    the oldest go first beyond `size`. (An OrderedDict with expiry: a caching library would add
    a dependency for these few lines.)"""

    def __init__(
        self,
        ttl_s: float = REVIEW_CACHE_TTL_S,
        size: int = REVIEW_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._clock = clock
        self._callers: OrderedDict[bytes, tuple[float, Caller]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Caller | None:
        key = self._key(token)
        found = self._callers.get(key)
        if found is None:
            return None
        expires, caller = found
        if expires <= self._clock():
            del self._callers[key]
            return None
        return caller

    def put(self, token: str, caller: Caller) -> None:
        key = self._key(token)
        self._callers.pop(key, None)
        self._callers[key] = (self._clock() + self._ttl_s, caller)
        while len(self._callers) > self._size:
            self._callers.popitem(last=False)


class ServiceAccountAuthenticator:
    def __init__(
        self,
        reviewer: TokenReviewer,
        admins: frozenset[str],
        accepted: AcceptedTokens | None = None,
    ) -> None:
        self._reviewer = reviewer
        self._admins = admins
        self._accepted = accepted if accepted is not None else AcceptedTokens()

    async def caller(self, token: str) -> Caller:
        found = self._accepted.get(token)
        if found is not None:
            return found
        caller = caller_from_review(await self._reviewer.review(token), self._admins)
        self._accepted.put(token, caller)
        return caller

    async def close(self) -> None:
        await self._reviewer.close()
