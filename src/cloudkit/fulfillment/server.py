"""The fulfillment HTTP server: the FastAPI application, its error answers and its TLS listener.

Every error is rendered here, once, as `models.Error` (`{code, message, details[{field,
reason}]}`): validation 422 naming the field, a broken filter 400, another tenant's or a missing
record 404, a stale version 409, a body over 1 MiB 413, a database that is down 503. Nothing a
caller sends reaches an answer except field paths and the caller's own filter text.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudkit.fulfillment.caller import Authenticator
from cloudkit.fulfillment.filters import FilterError
from cloudkit.fulfillment.routes.compute_instances import private_router, public_router
from cloudkit.fulfillment.routes.events import events_router
from cloudkit.fulfillment.routes.hubs import hubs_router
from cloudkit.fulfillment.store.base import Conflict, NotFound, Store, Unavailable
from cloudkit.fulfillment.updates import UpdateRefused

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
_LOCATIONS = ("body", "query", "path", "header")


def _error(code: int, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": details or []}, code)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _invalid(errors: list[Any]) -> JSONResponse:
    # pydantic's `input` would echo the caller's data back; only the place and the reason go.
    details = [{"field": _field(e.get("loc", ())), "reason": str(e.get("msg", ""))} for e in errors]
    first = details[0] if details else {"field": "body", "reason": "invalid"}
    return _error(422, f"{first['field']}: {first['reason']}", details)


def _install_errors(app: FastAPI) -> None:
    async def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _invalid(list(exc.errors()))

    async def object_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return _invalid(list(exc.errors()))

    async def update_refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UpdateRefused)
        return _error(422, str(exc), [{"field": exc.field, "reason": exc.reason}])

    async def bad_filter(_: Request, exc: Exception) -> JSONResponse:
        return _error(400, str(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, "not found")

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return _error(409, "metadata.version: the record has changed since it was read")

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return _error(503, "the database is unavailable; retry later")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the caller's fault: the trace goes to the log, the answer keeps the shape.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error")

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        answer = _error(exc.status_code, str(exc.detail))
        answer.headers.update(exc.headers or {})
        return answer

    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(ValidationError, object_invalid)
    app.add_exception_handler(UpdateRefused, update_refused)
    app.add_exception_handler(FilterError, bad_filter)
    # The store refuses an unknown order path with ValueError (its documented contract).
    app.add_exception_handler(ValueError, bad_filter)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


class BodyLimit:
    """413 (as every error, a `models.Error`) for a body over `limit` bytes, declared or streamed.

    FastAPI's own `max_body_size` answers a declared length in plain text, unlike every other
    error of this API; this small ASGI wrapper keeps one error shape.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.limit} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _error(413, too_large)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the handler's body read: rendered by http_error below.
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, counted, send)


def create_app(store: Store, authenticator: Authenticator) -> FastAPI:
    """The application over a store and an authenticator (both owned by the caller)."""
    app = FastAPI(
        title="cloudkit fulfillment API",
        version="v1",
        description="Tenants order compute instances; see docs/fulfillment.md.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.authenticator = authenticator
    _install_errors(app)
    for api in (public_router(), private_router(), hubs_router(), events_router()):
        app.include_router(api)
    app.add_middleware(BodyLimit)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), bound before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(
    app: FastAPI,
    sock: socket.socket,
    *,
    tls_cert: Path,
    tls_key: Path,
) -> None:
    """Serve HTTPS on `sock` until SIGINT or SIGTERM (uvicorn's handlers)."""
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        log_level="warning",
        # Open event streams would hold a shutdown forever; they end (clients re-list).
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    await uvicorn.Server(config).serve(sockets=[sock])
