"""The HTTP shell: routes under both API prefixes, trailing-slash redirects, auth, error bodies.

Handlers live in `views`; this module only decides who may call what and how errors look
(reference §2): 401 with WWW-Authenticate, 403 for a read-only token on a non-GET, 404/405
as DRF renders them, and Django's APPEND_SLASH 301 for a path without its trailing slash.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from cloudkit.local.automation.views import Views

log = logging.getLogger(__name__)

PREFIXES = ("/api/v2", "/api/controller/v2")
UNAUTHENTICATED = {"/api/", "/api/controller/"} | {f"{p}/ping/" for p in PREFIXES}
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
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            return detail(401, NOT_AUTHENTICATED, **{"WWW-Authenticate": WWW_AUTHENTICATE})
        if hmac.compare_digest(presented.encode(), token.encode()):
            return await handler(request)
        if hmac.compare_digest(presented.encode(), read_token.encode()):
            if request.method not in SAFE_METHODS:
                return detail(403, PERMISSION_DENIED)
            return await handler(request)
        # An unknown token is treated as anonymous, hence 401 rather than 403 (reference §2).
        return detail(401, NOT_AUTHENTICATED, **{"WWW-Authenticate": WWW_AUTHENTICATE})

    app = web.Application(middlewares=[errors, append_slash, auth])
    app.router.add_get("/api/", views.root)
    app.router.add_get("/api/controller/", views.root)
    for prefix in PREFIXES:
        _routes(app, prefix, views)
    return app


def _routes(app: web.Application, p: str, v: Views) -> None:
    # AWX's URL patterns take ids as [0-9]+ (never \d, which matches every Unicode digit);
    # the views turn ids no row can have (2^63 and past) into 404 too.
    add = app.router.add_route
    add("GET", f"{p}/", v.version_root)
    add("GET", f"{p}/ping/", v.ping)
    add("GET", f"{p}/me/", v.me)
    for collection in ("job_templates", "workflow_job_templates"):
        add("GET", f"{p}/{collection}/", v.list_templates)
        add("GET", f"{p}/{collection}/{{template}}/", v.get_template)
        add("GET", f"{p}/{collection}/{{template}}/launch/", v.launch_preflight)
        add("POST", f"{p}/{collection}/{{template}}/launch/", v.launch)
    for collection in ("jobs", "workflow_jobs"):
        add("GET", f"{p}/{collection}/", v.list_jobs)
        add("GET", f"{p}/{collection}/{{job:[0-9]+}}/", v.get_job)
        add("DELETE", f"{p}/{collection}/{{job:[0-9]+}}/", v.delete_job)
        add("GET", f"{p}/{collection}/{{job:[0-9]+}}/cancel/", v.can_cancel)
        add("POST", f"{p}/{collection}/{{job:[0-9]+}}/cancel/", v.cancel)
    add("GET", f"{p}/jobs/{{job:[0-9]+}}/stdout/", v.stdout)
    add("GET", f"{p}/jobs/{{job:[0-9]+}}/job_events/", v.job_events)
    add("GET", f"{p}/workflow_jobs/{{job:[0-9]+}}/workflow_nodes/", v.workflow_nodes)
    add("GET", f"{p}/unified_jobs/", v.list_jobs)
