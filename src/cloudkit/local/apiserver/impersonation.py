"""Impersonation (`kubectl --as`, `--as-group`): between authentication and authorization.

As kube-apiserver's impersonation filter: each requested identity needs the `impersonate` verb
on `users`, `groups`, `serviceaccounts` (in the account's namespace) or `uids`; the result is
the impersonated user with `system:authenticated` added, and a ServiceAccount's groups when
no group is given.
"""

from __future__ import annotations

from collections.abc import Callable

from multidict import CIMultiDictProxy

from cloudkit.local.apiserver.authn import parse_service_account, service_account_user
from cloudkit.local.apiserver.authz import AUTHENTICATED, Attributes, UserInfo
from cloudkit.local.apiserver.errors import ApiError

Check = Callable[[Attributes], None]  # raises the 403 when not allowed


def _asks(user: UserInfo, username: str, groups: list[str], uid: str) -> list[Attributes]:
    asks = []
    sa = parse_service_account(username)
    if sa is not None:
        asks.append(Attributes(user, "impersonate", resource="serviceaccounts",
                               namespace=sa[0], name=sa[1]))  # fmt: skip
    else:
        asks.append(Attributes(user, "impersonate", resource="users", name=username))
    asks += [Attributes(user, "impersonate", resource="groups", name=g) for g in groups]
    if uid:
        asks.append(Attributes(user, "impersonate", api_group="authentication.k8s.io",
                               resource="uids", name=uid))  # fmt: skip
    return asks


def impersonated(user: UserInfo, headers: CIMultiDictProxy[str], check: Check) -> UserInfo:
    """The user a request acts as: `user` itself unless it asks to impersonate someone."""
    username = headers.get("Impersonate-User", "")
    groups = headers.getall("Impersonate-Group", [])
    uid = headers.get("Impersonate-Uid", "")
    if not username:
        if groups or uid:
            raise ApiError(
                400, "requested impersonation of groups or uid without impersonating a user"
            )
        return user
    for ask in _asks(user, username, groups, uid):
        check(ask)
    sa = parse_service_account(username)
    if sa is not None and not groups:
        groups = list(service_account_user(*sa).groups)
    if username != "system:anonymous" and AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(username, tuple(groups), uid)
