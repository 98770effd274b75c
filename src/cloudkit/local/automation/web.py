"""The HTTP shell: routes under both API prefixes, trailing-slash redirects, auth, error bodies.

Handlers live in `views`; this module only decides who may call what and how errors look
(reference §2): 401 with WWW-Authenticate, 403 for a read-only token on a non-GET, 404/405
as DRF renders them, and Django's APPEND_SLASH 301 for a path without its trailing slash.
The API roots (`/api/`, `/api/v2/` and their gateway twins) and `ping/` are public, as in
AWX: the AWX CLI reads `/api/v2/` before it authenticates (reference §8). Every path answers
HEAD beside GET, and OPTIONS with its metadata (`metadata.ENDPOINTS`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from cloudkit.local.automation.metadata import ENDPOINTS, Endpoint, plain
from cloudkit.local.automation.views import Views

log = logging.getLogger(__name__)

PREFIXES = ("/api/v2", "/api/controller/v2")
UNAUTHENTICATED = (
    {"/api/", "/api/controller/"} | {f"{p}/" for p in PREFIXES} | {f"{p}/ping/" for p in PREFIXES}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_AUTHENTICATED = (
    "Authentication credentials were not provided. To establish a login session, visit /api/login/."
)
PERMISSION_DENIED = "You do not have permission to perform this action."
WWW_AUTHENTICATE = "Bearer realm=api authorization_url=/api/o/authorize/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def detail(status: int, text: str, **headers: str) -> web.Response:
    return web.json_response({"detail": text}, status=status, headers=headers or None)


def build_app(views: Views, *, token: str, read_token: str) -> web.Application:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed:
            return detail(405, f'Method "{request.method}" not allowed.')
        except web.HTTPNotFound:
            return detail(404, "Not found.")

    @web.middleware
    async def append_slash(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/api") and not path.endswith("/"):
            target = path + "/" + (f"?{request.query_string}" if request.query_string else "")
            raise web.HTTPMovedPermanently(target)
        return await handler(request)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED:
            return await handler(request)
        presented = _bearer(request)
        if not presented:
            return detail(401, NOT_AUTHENTICATED, **{"WWW-Authenticate": WWW_AUTHENTICATE})
        if hmac.compare_digest(presented.encode(), token.encode()):
            return await handler(request)
        if hmac.compare_digest(presented.encode(), read_token.encode()):
            if request.method not in SAFE_METHODS:
                return detail(403, PERMISSION_DENIED)
            return await handler(request)
        # An unknown token is treated as anonymous, hence 401 rather than 403 (reference §2).
        return detail(401, NOT_AUTHENTICATED, **{"WWW-Authenticate": WWW_AUTHENTICATE})

    def can_write(request: web.Request) -> bool:
        # Only the write token sees POST in OPTIONS, as AWX drops what a caller may not do.
        return hmac.compare_digest(_bearer(request).encode(), token.encode())

    def add(path: str, endpoint: Endpoint, **handlers: Handler) -> None:
        """One path: its handlers by method, HEAD beside GET, and OPTIONS from `endpoint`."""
        resource = app.router.add_resource(path)
        for method, handler in handlers.items():
            if method == "get":
                resource.add_route("HEAD", handler)
            resource.add_route(method.upper(), handler)
        resource.add_route("OPTIONS", views.options(endpoint, can_write))

    app = web.Application(middlewares=[errors, append_slash, auth])
    add("/api/", plain("REST API", "API versions"), get=views.root)
    add("/api/controller/", plain("REST API", "API versions"), get=views.root)
    for prefix in PREFIXES:
        _routes(prefix, views, add)
    return app


def _bearer(request: web.Request) -> str:
    """The bearer token the request presents, or "" (the scheme in any case, as AWX)."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return presented.strip() if scheme.lower() == "bearer" else ""


def _routes(p: str, v: Views, add: Callable[..., None]) -> None:
    # AWX's URL patterns take ids as [0-9]+ (never \d, which matches every Unicode digit);
    # the views turn ids no row can have (2^63 and past) into 404 too.
    def sub(path: str, endpoint: Endpoint, **handlers: Handler) -> None:
        add(f"{p}/{path}", endpoint, **handlers)

    sub("", plain("Version 2", "Top-level resources"), get=v.version_root)
    sub("ping/", plain("Ping", "Reachability and capacity; no credentials needed."), get=v.ping)
    sub("me/", plain("Me", "The user the token belongs to."), get=v.me)
    for collection in ("job_templates", "workflow_job_templates"):
        kind = collection.removesuffix("s")
        sub(f"{collection}/", ENDPOINTS[collection], get=v.list_templates)
        sub(f"{collection}/{{template}}/", ENDPOINTS[kind], get=v.get_template)
        sub(
            f"{collection}/{{template}}/launch/",
            ENDPOINTS[f"{kind}_launch"],
            get=v.launch_preflight,
            post=v.launch,
        )
    for collection in ("jobs", "workflow_jobs"):
        kind = collection.removesuffix("s")
        sub(f"{collection}/", ENDPOINTS[collection], get=v.list_jobs)
        sub(f"{collection}/{{job:[0-9]+}}/", ENDPOINTS[kind], get=v.get_job, delete=v.delete_job)
        sub(
            f"{collection}/{{job:[0-9]+}}/cancel/",
            ENDPOINTS["cancel"],
            get=v.can_cancel,
            post=v.cancel,
        )
    sub("jobs/{job:[0-9]+}/stdout/", plain("Job Stdout", "The job's output."), get=v.stdout)
    sub(
        "jobs/{job:[0-9]+}/job_events/",
        plain("Job Events", "The job's events, ordered by start_line."),
        get=v.job_events,
    )
    sub(
        "workflow_jobs/{job:[0-9]+}/workflow_nodes/",
        plain("Workflow Job Nodes", "The jobs a workflow job spawned."),
        get=v.workflow_nodes,
    )
    sub("unified_jobs/", ENDPOINTS["unified_jobs"], get=v.list_jobs)
