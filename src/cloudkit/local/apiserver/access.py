"""Access control over HTTP: who a request is (authn, impersonation), whether it may proceed
(RBAC over the stored Roles and bindings), and the APIs about access itself: TokenRequest,
TokenReview, SelfSubjectAccessReview, SelfSubjectRulesReview and SelfSubjectReview (none of
them stored).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, TextIO

from aiohttp import web

from cloudkit.local.apiserver import (
    authz,
    bodies,
    escalation,
    impersonation,
    protobuf,
    requestinfo,
    token_review,
)
from cloudkit.local.apiserver.authn import AUDIENCE, Authenticator
from cloudkit.local.apiserver.authz import Attributes, Policy, UserInfo
from cloudkit.local.apiserver.cluster import Admission
from cloudkit.local.apiserver.errors import ApiError, Cause, not_found
from cloudkit.local.apiserver.resources import RBAC, ResourceInfo
from cloudkit.local.apiserver.store import Store

SA_RKEY = "/serviceaccounts"
USER_KEY = web.RequestKey("cloudkit.user", UserInfo)
DEFAULT_EXPIRATION_S = 3600
MIN_EXPIRATION_S = 600
MAX_EXPIRATION_S = 2**32
RBAC_RKEYS = tuple(f"{RBAC}/{kind}" for kind in
                   ("roles", "clusterroles", "rolebindings", "clusterrolebindings"))  # fmt: skip
# Decisions kept per RBAC state; past this many distinct requests the cache starts over.
DECISION_CACHE_LIMIT = 4096


def _invalid(kind: str, group: str, name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f'{kind}.{group} "{name}" is invalid: {field}: {message}',
        reason="Invalid",
        name=name,
        group=group,
        kind=kind,
        causes=[Cause("FieldValueInvalid", message, field)],
    )


def _only_gc_fields_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Upstream's IsOnlyMutatingGCFields: a write touching only finalizers and owner
    references (what garbage collection needs) is not an escalation."""
    gc = ("finalizers", "ownerReferences", "resourceVersion")

    def rest(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in gc}
        return {**obj, "metadata": meta}

    return rest(old) == rest(new)


def _timestamp(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _audit_fields(attrs: Attributes) -> dict[str, Any]:
    fields: dict[str, Any] = {"user": attrs.user.name, "verb": attrs.verb}
    if not attrs.resource_request:
        return {**fields, "path": attrs.path}
    return {
        **fields,
        "group": attrs.api_group,
        "resource": attrs.resource,
        "subresource": attrs.subresource,
        "namespace": attrs.namespace,
        "name": attrs.name,
    }


class Access:
    """The access steps of the request pipeline, over the store's RBAC objects."""

    def __init__(
        self, store: Store, admin_token: str, signing_key: bytes, audit: TextIO | None = None
    ) -> None:
        self.store = store
        self.authenticator = Authenticator(admin_token, signing_key, self._sa_uid)
        # One JSON line per RBAC decision for users outside system:masters (kube-apiserver's
        # audit log, reduced to who asked what and the answer): what a least-privilege review
        # reads. Never a token or a body.
        self.audit = audit
        # The policy and the decisions made under it hold only while no RBAC object has been
        # written since: the key is the store's write count of each RBAC kind, so a revoked
        # binding takes effect on the very next request.
        self._policy_key: tuple[int, ...] = ()
        self._policy: Policy | None = None
        self._decisions: dict[Attributes, tuple[bool, str]] = {}

    def _sa_uid(self, namespace: str, name: str) -> str | None:
        sa = self.store.get(SA_RKEY, namespace, name)
        return None if sa is None else str(sa["metadata"].get("uid", ""))

    def policy(self) -> Policy:
        """The RBAC objects as they are now, indexed (rebuilt only after one was written)."""
        key = tuple(self.store.writes_by_rkey[rkey] for rkey in RBAC_RKEYS)
        if self._policy is None or key != self._policy_key:
            self._policy = authz.policy_from_objects(
                *(self.store.list_objects(rkey) for rkey in RBAC_RKEYS)
            )
            self._policy_key = key
            self._decisions = {}
        return self._policy

    def _decide(self, attrs: Attributes) -> tuple[bool, str]:
        policy = self.policy()  # first: it empties the decisions when RBAC has changed
        decision = self._decisions.get(attrs)
        if decision is None:
            decision = authz.authorize(policy, attrs)
            if len(self._decisions) >= DECISION_CACHE_LIMIT:
                self._decisions = {}
            self._decisions[attrs] = decision
        return decision

    def check(self, attrs: Attributes) -> None:
        """Raise kube-apiserver's 403 unless RBAC allows `attrs`."""
        if authz.MASTERS in attrs.user.groups:
            return
        allowed, reason = self._decide(attrs)
        if self.audit is not None:
            self.audit.write(json.dumps({**_audit_fields(attrs), "allowed": allowed,
                                         "reason": reason}) + "\n")  # fmt: skip
            self.audit.flush()
        if not allowed:
            raise ApiError(
                403,
                authz.forbidden_message(attrs),
                name=attrs.name or None,
                group=attrs.api_group or None,
                kind=attrs.resource or None,
            )

    def check_create(self, user: UserInfo, info: ResourceInfo, namespace: str, name: str) -> None:
        """A write that would create the object (server-side apply to a missing one) needs
        `create` as well as the request's own verb, as kube-apiserver's patch handler asks."""
        if authz.MASTERS in user.groups:
            return
        scope = namespace if info.namespaced else ""
        self.check(Attributes(user, "create", api_group=info.group, resource=info.plural,
                              name=name, namespace=scope))  # fmt: skip

    def rbac_admission(self, user: UserInfo) -> Admission | None:
        """Upstream's escalation prevention for `user`'s writes of RBAC objects (None for
        system:masters, which may grant anything)."""
        if authz.MASTERS in user.groups:
            return None

        def admit(info: ResourceInfo, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
            if info.group != RBAC or (old is not None and _only_gc_fields_changed(old, new)):
                return
            if info.kind in ("Role", "ClusterRole"):
                self._confirm_role(user, info, old, new)
            else:
                self._confirm_binding(user, info, new)

        return admit

    def _allowed(self, attrs: Attributes) -> bool:
        return self._decide(attrs)[0]

    def _confirm_role(
        self, user: UserInfo, info: ResourceInfo, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        meta = new["metadata"]
        namespace = meta.get("namespace") or "" if info.namespaced else ""
        escalate = Attributes(user, "escalate", api_group=RBAC, resource=info.plural,
                              name=meta["name"], namespace=namespace)  # fmt: skip
        if self._allowed(escalate):
            return
        granted = list(new.get("rules") or [])
        if any((o or {}).get("aggregationRule") for o in (old, new)):
            # An aggregationRule can gather anything: it takes every right, as upstream.
            granted += escalation.FULL_AUTHORITY
        self._confirm_held(user, info, meta["name"], namespace, granted)

    def _confirm_binding(self, user: UserInfo, info: ResourceInfo, new: dict[str, Any]) -> None:
        meta, ref = new["metadata"], new.get("roleRef") or {}
        namespace = meta.get("namespace") or "" if info.namespaced else ""
        role_resource = "roles" if ref.get("kind") == "Role" else "clusterroles"
        bind = Attributes(user, "bind", api_group=str(ref.get("apiGroup", "")),
                          resource=role_resource, name=str(ref.get("name", "")),
                          namespace=namespace)  # fmt: skip
        if self._allowed(bind):
            return
        policy = self.policy()
        if ref.get("kind") == "Role":
            rules = policy.roles.get((namespace, str(ref.get("name", ""))))
        else:
            rules = policy.cluster_roles.get(str(ref.get("name", "")))
        if rules is None:
            raise not_found(role_resource, str(ref.get("name", "")), RBAC)
        self._confirm_held(user, info, meta["name"], namespace, rules)

    def _confirm_held(
        self, user: UserInfo, info: ResourceInfo, name: str, namespace: str, granted: list[Any]
    ) -> None:
        """403 unless `user` holds every right in `granted` (upstream's ConfirmNoEscalation)."""
        owned = [r for g in authz.grants(self.policy(), user, namespace) for r in g.rules]
        missing = escalation.missing_rights(owned, granted)
        if missing:
            raise ApiError(
                403,
                f'{info.plural}.{RBAC} "{name}" is forbidden: '
                + escalation.escalation_message(user, missing),
                name=name,
                group=RBAC,
                kind=info.plural,
            )

    def admit(self, request: web.Request) -> UserInfo:
        """Authenticate, impersonate and authorize `request`; the user it acts as.

        Raises 401 for no valid token and 403 for a request RBAC does not allow."""
        user = self.authenticator.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            raise ApiError(401, "Unauthorized")
        user = impersonation.impersonated(user, request.headers, self.check)
        if authz.MASTERS not in user.groups:  # masters may do anything: nothing to resolve
            self.check(requestinfo.resolve(user, request.method, request.path, request.query))
        request[USER_KEY] = user
        return user

    # -- the access APIs ------------------------------------------------------------------------

    async def serve(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> dict[str, Any] | None:
        """The reply of an access API, or None when the path is not one of them."""
        if request.method != "POST" or version != "v1":
            return None
        user: UserInfo = request[USER_KEY]
        if group == "authorization.k8s.io" and rest == ["selfsubjectaccessreviews"]:
            return self._access_review(user, await self._body(request))
        if group == "authorization.k8s.io" and rest == ["selfsubjectrulesreviews"]:
            return self._rules_review(user, await self._body(request))
        if group == "authentication.k8s.io" and rest == ["selfsubjectreviews"]:
            return self._whoami(user)
        if group == "authentication.k8s.io" and rest == ["tokenreviews"]:
            return token_review.review(self.authenticator, await self._body(request))
        if (
            group == ""
            and len(rest) == 5
            and rest[0] == "namespaces"
            and rest[2:5:2]
            == [
                "serviceaccounts",
                "token",
            ]
        ):
            return self._token_request(rest[1], rest[3], await self._body(request))
        return None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await bodies.read(request)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/vnd.kubernetes.protobuf":
            body: Any = protobuf.decode(raw)
        else:
            body = bodies.decode_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be an object")
        return body

    def _access_review(self, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
        res, non_res = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if isinstance(res, dict) == isinstance(non_res, dict):
            raise _invalid(
                "SelfSubjectAccessReview", "authorization.k8s.io", "", "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )  # fmt: skip
        if isinstance(res, dict):
            attrs = Attributes(
                user,
                str(res.get("verb", "")),
                api_group=str(res.get("group", "")),
                resource=str(res.get("resource", "")),
                subresource=str(res.get("subresource", "")),
                name=str(res.get("name", "")),
                namespace=str(res.get("namespace", "")),
            )
        else:
            assert isinstance(non_res, dict)
            attrs = Attributes(
                user, str(non_res.get("verb", "")), resource_request=False,
                path=str(non_res.get("path", "")),
            )  # fmt: skip
        allowed = authz.MASTERS in user.groups
        reason = ""
        if not allowed:
            allowed, reason = authz.authorize(self.policy(), attrs)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return {**body, "metadata": {"creationTimestamp": None}, "status": status}

    def _rules_review(self, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
        namespace = str((body.get("spec") or {}).get("namespace", ""))
        if authz.MASTERS in user.groups:
            rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                     {"verbs": ["*"], "nonResourceURLs": ["*"]}]  # fmt: skip
        else:
            rules = [r for g in authz.grants(self.policy(), user, namespace) for r in g.rules]
        resource_rules = [
            {k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in r}
            for r in rules
            if r.get("resources")
        ]
        non_resource_rules = [
            {"verbs": r.get("verbs") or [], "nonResourceURLs": r["nonResourceURLs"]}
            for r in rules
            if r.get("nonResourceURLs")
        ]
        return {
            **body,
            "metadata": {"creationTimestamp": None},
            "status": {
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": False,
            },
        }

    @staticmethod
    def _whoami(user: UserInfo) -> dict[str, Any]:
        info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
        if user.uid:
            info["uid"] = user.uid
        return {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": info},
        }

    def _token_request(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        uid = self._sa_uid(namespace, name)
        if uid is None:
            raise ApiError(
                404, f'serviceaccounts "{name}" not found', name=name, kind="serviceaccounts"
            )
        spec = dict(body.get("spec") or {})
        seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION_S
        too_short = not isinstance(seconds, int) or seconds < MIN_EXPIRATION_S
        if too_short or seconds > MAX_EXPIRATION_S:
            limit = "less than 10 minutes" if too_short else "larger than 2^32 seconds"
            raise _invalid(
                "TokenRequest", "authentication.k8s.io", name, "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration {limit}",
            )  # fmt: skip
        audiences = [str(a) for a in spec.get("audiences") or [AUDIENCE]]
        issued = self.authenticator.issue(namespace, name, uid, seconds, audiences)
        spec.update(audiences=audiences, expirationSeconds=seconds)
        spec.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _timestamp(time.time()),
            },
            "spec": spec,
            "status": {
                "token": issued.token,
                "expirationTimestamp": _timestamp(issued.expires_at),
            },
        }
