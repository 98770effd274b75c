"""Request bodies as the server takes them in: the size limit, JSON/YAML decoding, nesting depth.

Every byte a client sends passes through here before any handler looks at it, so a hostile
body is refused (413/400) before anything is read into an object, let alone written.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from cloudkit.local.apiserver.errors import ApiError

# kube-apiserver's default --max-request-body-bytes (3 MiB): a body of exactly this size is read.
MAX_BODY_BYTES = 3 * 1024 * 1024
# kube-apiserver's JSON decoder stops at 10000 levels; every layer of this server (copying,
# patching, schema validation, CEL, encoding) recurses per level, so ours stops far earlier.
# Real objects (CRDs with deep schemas included) stay well below it.
MAX_DEPTH = 100
_CHUNK = 64 * 1024


def too_large() -> ApiError:
    return ApiError(
        413,
        f"Request entity too large: limit is {MAX_BODY_BYTES}",
        reason="RequestEntityTooLarge",
    )


async def read(request: web.Request) -> bytes:
    """The whole body, or 413 once it passes MAX_BODY_BYTES (chunked bodies included)."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise too_large()
    if declared is not None:
        # aiohttp hands over at most Content-Length bytes, now known to be within the limit.
        return await request.content.read()
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        parts.append(chunk)


def too_deep() -> ApiError:
    return ApiError(400, f"the request body is nested deeper than {MAX_DEPTH} levels")


def check_depth(value: Any) -> Any:
    """`value` itself when it nests at most MAX_DEPTH levels, else 400 (checked without
    recursion, so any depth is safe to measure)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    # A JSON body cannot hold more values than bytes; only YAML aliases expand past that
    # (a "billion laughs" document), and those are refused before anything walks them again.
    budget = MAX_BODY_BYTES
    while pending:
        node, depth = pending.pop()
        budget -= 1
        if budget < 0:
            raise ApiError(400, "the request body expands to too many values")
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise too_deep()
        pending.extend((child, depth + 1) for child in children)
    return value


def decode_json(raw: bytes, what: str = "the request body") -> Any:
    """JSON → value; 400 for bad JSON or too deep a nesting (never a RecursionError)."""
    try:
        value = json.loads(raw or b"null")
    except RecursionError:
        raise too_deep() from None
    except ValueError as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}") from None
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        # Every level of JSON nesting opens with one of these bytes, so a body with at most
        # MAX_DEPTH of them cannot nest deeper: most bodies skip the walk.
        return value
    return check_depth(value)


def decode_yaml(raw: bytes) -> Any:
    """YAML (or JSON) → value for apply patches; 400 like decode_json."""
    try:
        value = yaml.safe_load(raw.decode() or "{}")
    except RecursionError:
        raise too_deep() from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, f"invalid patch body: {exc}") from None
    return check_depth(value)
