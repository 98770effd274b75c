"""TokenReview (`authentication.k8s.io/v1`, create only, not stored): another service asks
whether a bearer token is valid here and whose it is, as kube-apiserver answers it.

The caller needs `create` on `tokenreviews` (RBAC, like `system:auth-delegator`). One
deliberate difference: the answer's `spec.token` is emptied, so an answer that ends up in a
log never carries the token it was about.
"""

from __future__ import annotations

from typing import Any

from cloudkit.local.apiserver.authn import Authenticator
from cloudkit.local.apiserver.errors import ApiError, Cause

GROUP = "authentication.k8s.io"


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f'TokenReview.{GROUP} "" is invalid: {field}: {message}',
        reason="Invalid",
        group=GROUP,
        kind="TokenReview",
        causes=[Cause("FieldValueInvalid", message, field)],
    )


def review(authenticator: Authenticator, body: dict[str, Any]) -> dict[str, Any]:
    """The TokenReview `body` answered: `status.authenticated`, `status.user` (username,
    uid, groups) and `status.audiences`, or an empty user when the token is not valid."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise _invalid("spec", "Required value")
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        # kube-apiserver's words for an empty token.
        raise ApiError(400, "token is required for TokenReview in authentication")
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _invalid("spec.audiences", "Invalid value: must be a list of strings")
    found = authenticator.review(token, audiences)
    status: dict[str, Any] = {"user": {}}
    if found is not None:
        user, matched = found
        info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
        if user.uid:
            info["uid"] = user.uid
        status = {"authenticated": True, "user": info, "audiences": matched}
    return {
        "kind": "TokenReview",
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {**spec, "token": ""},
        "status": status,
    }
