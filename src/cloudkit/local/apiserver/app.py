"""The aiohttp application: bearer auth, Status errors, URL routing and the resource handlers.

Handlers only parse, authorize, dispatch to the Cluster and render; they never touch SQLite.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cloudkit.local.apiserver import bodies, discovery, openapi, protobuf, watch
from cloudkit.local.apiserver.access import USER_KEY, Access
from cloudkit.local.apiserver.cluster import Cluster, WriteOptions
from cloudkit.local.apiserver.errors import ApiError
from cloudkit.local.apiserver.reads import ReadHandlers
from cloudkit.local.apiserver.resources import RBAC
from cloudkit.local.apiserver.wire import ServerConfig, Target, flag, json_response

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def _manager_from_user_agent(user_agent: str | None) -> str:
    """The field manager of a write that names none: the User-Agent up to its first `/`
    (`kubectl/v1.37.1 (linux/amd64)` → `kubectl`), as upstream's prefixFromUserAgent."""
    return (user_agent or "").split("/", 1)[0][:128] or "unknown"


class ApiServerApp(ReadHandlers):
    """Routes requests to discovery, OpenAPI and the resource handlers."""

    def __init__(self, cluster: Cluster, config: ServerConfig, access: Access) -> None:
        self.cluster = cluster
        self.access = access
        self.registry = cluster.registry
        self.config = config
        self.line_cache: watch.LineCache = collections.OrderedDict()
        # Bodies are read through bodies.read (413 past 3 MiB); aiohttp's own limit only
        # backs that up and must stay above it.
        self.app = web.Application(
            middlewares=[self._errors_and_auth], client_max_size=2 * bodies.MAX_BODY_BYTES
        )
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    @web.middleware
    async def _errors_and_auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # kube-apiserver's order: authentication → impersonation → authorization, then
            # the handler (admission and storage).
            self.access.admit(request)
            return await handler(request)
        except ApiError as exc:
            return json_response(exc.status(), exc.code)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("internal error on %s %s", request.method, request.path)
            return json_response(
                ApiError(500, f"internal error: {type(exc).__name__}").status(), 500
            )

    # -- routing -------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return json_response(
                {"paths": ["/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version"]}
            )
        head = parts[0]
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return json_response(discovery.KUBE_VERSION)
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return json_response(discovery.api_versions())
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return json_response(discovery.api_group_list(self.registry))
            if len(parts) == 2:
                doc = discovery.api_group(self.registry, parts[1])
                if doc is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return json_response(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        reply = await self.access.serve(request, group, version, rest)
        if reply is not None:
            return json_response(reply, 201)
        if not rest:
            doc = discovery.resource_list(self.registry, group, version)
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return json_response(doc)
        target = self._target(group, version, rest)
        return await self._resource(request, target)

    def _openapi(self, request: web.Request, rest: list[str]) -> web.Response:
        if rest == ["v2"]:
            if "protobuf" in request.headers.get("Accept", ""):
                return web.Response(body=openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF)
            return json_response(openapi.v2_document())
        if rest == ["v3"]:
            return json_response(openapi.index(self.registry))
        if len(rest) >= 3 and rest[0] == "v3":
            if rest[1] == "api" and len(rest) == 3:
                doc = openapi.group_version_doc(self.registry, "", rest[2])
            elif rest[1] == "apis" and len(rest) == 4:
                doc = openapi.group_version_doc(self.registry, rest[2], rest[3])
            else:
                doc = None
            if doc is not None:
                return json_response(doc)
        raise ApiError(404, "the server could not find the requested resource")

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        lookup = self.registry.lookup
        if rest[0] == "namespaces" and len(rest) >= 3:
            info = lookup(group, version, rest[2])
            if info is not None and info.namespaced and len(rest) <= 5:
                name = rest[3] if len(rest) >= 4 else None
                sub = rest[4] if len(rest) == 5 else None
                return self._checked(Target(info, rest[1], name, sub))
        info = lookup(group, version, rest[0])
        if info is None or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if info.namespaced and name is not None:
            raise ApiError(404, "the server could not find the requested resource")
        return self._checked(Target(info, None, name, sub))

    @staticmethod
    def _checked(target: Target) -> Target:
        if target.subresource is not None and not (
            target.subresource == "status" and target.info.status_subresource
        ):
            raise ApiError(404, "the server could not find the requested resource")
        return target

    # -- resources -----------------------------------------------------------------------------

    async def _resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if target.name is None:
            if method == "GET":
                if flag(request.query.get("watch")):
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE" and target.subresource is None:
                return await self._delete_collection(request, target)
            raise ApiError(
                405, f"{method} is not supported on a collection", reason="MethodNotAllowed"
            )
        if method == "GET":
            obj = self.cluster.get(target.info, target.namespace or "", target.name)
            return self._render_one(request, target.info, obj)
        if method == "PUT":
            return await self._update(request, target)
        if method == "PATCH":
            return await self._patch(request, target)
        if method == "DELETE" and target.subresource is None:
            return await self._delete(request, target)
        raise ApiError(405, f"{method} is not supported", reason="MethodNotAllowed")

    # -- writes ----------------------------------------------------------------------------

    def _write_options(self, request: web.Request, target: Target) -> WriteOptions:
        dry_run = request.query.getall("dryRun", [])
        if any(d != "All" for d in dry_run):
            raise ApiError(400, "Unsupported dry run value; supported values: All")
        validation = request.query.get("fieldValidation", "Warn")
        if validation not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f"invalid fieldValidation value {validation!r}")
        manager = request.query.get("fieldManager")
        if manager is not None and len(manager) > 128:
            raise ApiError(422, "fieldManager: must be at most 128 characters", reason="Invalid")
        # Escalation prevention only concerns RBAC objects: other writes skip the admission.
        admit = self.access.rbac_admission(request[USER_KEY]) if target.info.group == RBAC else None
        return WriteOptions(
            dry_run=bool(dry_run),
            field_validation=validation,
            admit=admit,
            field_manager=manager or _manager_from_user_agent(request.headers.get("User-Agent")),
            force=flag(request.query.get("force")),
        )

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0]
        if content_type.strip() == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(await bodies.read(request))
        if content_type.strip() not in ("application/json", ""):
            # client-go tries protobuf for built-ins first and falls back to JSON on 415.
            raise ApiError(415, f"the body of the request was in an unknown format: {content_type}")
        return bodies.decode_json(await bodies.read(request))

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        opts = self._write_options(request, target)
        body = await self._json_body(request)
        obj = self.cluster.create(target.info, target.namespace, body, opts)
        return self._object_response(target.info, obj, 201, opts.warnings)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        opts = self._write_options(request, target)
        body = await self._json_body(request)
        assert target.name is not None
        obj = self.cluster.update(
            target.info, target.namespace or "", target.name, body, target.subresource, opts
        )
        return self._object_response(target.info, obj, 200, opts.warnings)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        opts = self._write_options(request, target)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format: {content_type}")
        if flag(request.query.get("force")) and content_type != "application/apply-patch+yaml":
            raise ApiError(422, "force: Forbidden: may not be specified for non-apply patch")
        raw = await bodies.read(request)
        assert target.name is not None
        namespace = target.namespace or ""
        if (
            content_type == "application/apply-patch+yaml"
            and target.subresource is None
            and self.cluster.store.get(target.info.rkey, namespace, target.name) is None
        ):
            # No await from here to the write: the object cannot appear in between.
            self.access.check_create(request[USER_KEY], target.info, namespace, target.name)
        obj, created = self.cluster.patch(
            target.info,
            target.namespace or "",
            target.name,
            content_type,
            raw,
            target.subresource,
            opts,
            request.query.get("fieldManager"),
        )
        return self._object_response(target.info, obj, 201 if created else 200, opts.warnings)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        opts = self._write_options(request, target)
        raw = await bodies.read(request)
        options: dict[str, Any] = {}
        if raw.strip():
            options = bodies.decode_json(raw, "the DeleteOptions body")
            if not isinstance(options, dict):
                raise ApiError(400, "the DeleteOptions body must be an object")
            if "All" in (options.get("dryRun") or []):
                opts.dry_run = True
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        info = target.info
        assert target.name is not None
        obj, removed = self.cluster.delete(info, target.namespace or "", target.name, options, opts)
        if not removed:
            return self._object_response(info, self.cluster.present(info, obj))
        return json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": target.name,
                    "group": info.group,
                    "kind": info.plural,
                    "uid": obj["metadata"].get("uid", ""),
                },
            }
        )

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        """DELETE on a collection: delete every match (the `deletecollection` verb)."""
        opts = self._write_options(request, target)
        info = target.info
        match = self._matcher(request, info)
        options: dict[str, Any] = {}
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        items = [
            o for o in self.cluster.store.list_objects(info.rkey, target.namespace) if match(o)
        ]
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            if self.cluster.store.get(info.rkey, meta.get("namespace") or "", meta["name"]) is None:
                continue  # already collected as a dependent of an earlier item
            current, _ = self.cluster.delete(
                info, meta.get("namespace") or "", meta["name"], options, opts
            )
            deleted.append(self.cluster.present(info, current))
        return json_response(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(self.cluster.store.rv)},
                "items": deleted,
            }
        )
