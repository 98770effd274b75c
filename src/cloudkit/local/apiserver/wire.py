"""Wire helpers shared by the HTTP modules: JSON replies, query booleans, request targets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cloudkit.local.apiserver.resources import ResourceInfo


@dataclass
class ServerConfig:
    token: str
    bookmark_interval_s: float = 30.0


def json_response(
    body: Any, status: int = 200, warnings: list[str] | None = None, *, text: str | None = None
) -> web.Response:
    """`body` as compact JSON; `text` is its encoding when the caller already has it (the
    store's text of a stored object), so it is not encoded twice."""
    headers = {"Content-Type": "application/json"}
    if text is None:
        text = json.dumps(body, separators=(",", ":"))
    response = web.Response(body=text.encode(), status=status, headers=headers)
    for warning in warnings or []:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def flag(value: str | None) -> bool:
    """Query booleans: only `false`/`0` (any case) are false; kubernetes_asyncio sends True."""
    return value is not None and value.lower() not in ("false", "0")


@dataclass
class Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None
