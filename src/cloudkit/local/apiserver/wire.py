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


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json"}
    response = web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, headers=headers
    )
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
