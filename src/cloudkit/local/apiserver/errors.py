"""API errors as Kubernetes `Status` objects (the one place their wire shape is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    504: "Timeout",
}


@dataclass(frozen=True)
class Cause:
    """One reason an object is invalid (mirrors schema.Cause, kept here so errors stand alone)."""

    reason: str
    message: str
    field: str


class ApiError(Exception):
    """An error answered to the client as a Status with `code`."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[Any] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []
        self.retry_after_seconds = retry_after_seconds

    def status(self) -> dict[str, Any]:
        return status_body(
            self.code,
            self.message,
            self.reason,
            name=self.name,
            group=self.group,
            kind=self.kind,
            causes=self.causes,
            retry_after_seconds=self.retry_after_seconds,
        )


def status_body(
    code: int,
    message: str,
    reason: str,
    *,
    name: str | None = None,
    group: str | None = None,
    kind: str | None = None,
    causes: list[Any] | None = None,
    retry_after_seconds: int | None = None,
) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group is not None:
        details["group"] = group
    if kind is not None:
        details["kind"] = kind
    if causes:
        # `field` is omitted when empty, as in the real Status (Go's omitempty).
        details["causes"] = [
            {"reason": c.reason, "message": c.message, **({"field": c.field} if c.field else {})}
            for c in causes
        ]
    if retry_after_seconds is not None:
        details["retryAfterSeconds"] = retry_after_seconds
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(resource: str, name: str, group: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{qualified} "{name}" not found', name=name, group=group, kind=resource)


def already_exists(resource: str, name: str, group: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'{qualified} "{name}" already exists',
        reason="AlreadyExists",
        name=name,
        group=group,
        kind=resource,
    )


def conflict(resource: str, name: str, group: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        reason="Conflict",
        name=name,
        group=group,
        kind=resource,
    )


def invalid(kind: str, group: str, name: str, causes: list[Any]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    detail = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {detail}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def resource_version_too_large(requested: int, current: int) -> ApiError:
    """A read or watch from a resourceVersion the store has not reached (e.g. one handed out
    before the state directory was reset): kube-apiserver's 504 after its freshness wait."""
    return ApiError(
        504,
        f"Timeout: Too large resource version: {requested}, current: {current}",
        reason="Timeout",
        causes=[Cause("ResourceVersionTooLarge", "Too large resource version", "")],
        retry_after_seconds=1,
    )
