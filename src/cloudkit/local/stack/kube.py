"""A small async Kubernetes client for the local stack's own parts (VM simulator, stack, demo).

It speaks to any API server reachable through a token kubeconfig (the local one, or a real
cluster) with plain aiohttp: JSON bodies, merge and JSON patches, lists and watches. It is not
a general client: the operator uses kopf and the playbooks their own kubernetes_api action.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from cloudkit.watching import Follower

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """An API answer that is not 2xx; `status` is the HTTP code, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410): list again, then watch from there."""

    status = 410  # as the kubernetes clients' ApiException says it (cloudkit.watching.is_gone)


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate, as read from a kubeconfig."""

    server: str
    token: str
    ca_data: bytes | None = None
    insecure: bool = False

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeAccess:
        config = yaml.safe_load(path.read_text())
        current = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        context = contexts.get(current) or next(iter(contexts.values()))
        clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
        users = {u["name"]: u["user"] for u in config.get("users") or []}
        cluster, user = clusters[context["cluster"]], users[context["user"]]
        ca_data = cluster.get("certificate-authority-data")
        ca_file = cluster.get("certificate-authority")
        ca = base64.b64decode(ca_data) if ca_data else None
        if ca is None and ca_file:
            ca = (path.parent / ca_file).read_bytes()
        return cls(
            server=str(cluster["server"]).rstrip("/"),
            token=str(user.get("token") or ""),
            ca_data=ca,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        context = ssl.create_default_context()
        if self.ca_data:
            context.load_verify_locations(cadata=self.ca_data.decode())
        return context


def resource_path(
    group: str,
    version: str,
    plural: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or an object (core group when `group` is empty)."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
    return base


class KubeClient:
    """One aiohttp session against one API server; use as an async context manager."""

    def __init__(self, access: KubeAccess) -> None:
        self.access = access
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        return cls(KubeAccess.from_kubeconfig(path))

    async def __aenter__(self) -> KubeClient:
        headers = {"Accept": "application/json"}
        if self.access.token:
            headers["Authorization"] = f"Bearer {self.access.token}"
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context())
        self._session = aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient used outside `async with`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.access.server + path,
            data=data,
            headers=headers,
            params=dict(params or {}),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = await response.text()
            payload = _json_or_none(text)
            if response.status >= 400:
                raise _error(response.status, payload, text)
            return payload if isinstance(payload, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None on 404."""
        try:
            return await self.request("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=dict(body))

    async def ensure(self, path: str, body: Mapping[str, Any]) -> None:
        """Create the object unless it already exists (409 AlreadyExists is success)."""
        try:
            await self.create(path, body)
        except KubeError as error:
            if error.status != 409:
                raise

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=dict(patch), content_type=MERGE_PATCH)

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=operations, content_type=JSON_PATCH)

    async def delete(self, path: str) -> bool:
        """Request deletion; False if the object was already gone."""
        try:
            await self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def watch(
        self, path: str, resource_version: str, **params: str
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Yield (type, object) from a watch starting after `resource_version`.

        Ends when the server closes the stream; raises WatchExpired on 410 (re-list then).
        Bookmarks are requested so an idle stream still advances the resourceVersion.
        """
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            **params,
        }
        async with self.session.get(self.access.server + path, params=query) as response:
            if response.status == 410:
                raise WatchExpired(path)
            if response.status >= 400:
                text = await response.text()
                raise _error(response.status, _json_or_none(text), text)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(path)
                    raise KubeError(
                        int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", "")
                    )
                yield kind, obj


WatchEvent = tuple[str, dict[str, Any]]
"""(type, object) of one watch event, as `KubeClient.watch` yields it."""


def event_version(event: WatchEvent) -> str | None:
    """The resourceVersion an event (bookmarks included) moves a watch to."""
    version = (event[1].get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def follower(
    client: KubeClient,
    path: str,
    *,
    relist: Callable[[], Awaitable[str | None]],
    on_event: Callable[[WatchEvent], Awaitable[None]],
    **params: str,
) -> Follower[WatchEvent]:
    """How `cloudkit.watching.follow` lists and watches the collection `path` over `client`
    (`relist` lists it and returns the list's resourceVersion; `params` go to every watch)."""
    return Follower(
        relist=relist,
        watch=lambda version: aclosing(client.watch(path, version or "", **params)),
        on_event=on_event,
        version_of=event_version,
    )


def list_version(listing: Mapping[str, Any]) -> str | None:
    """A list's resourceVersion (where a watch resumes), None when the server sent none."""
    version = (listing.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _error(status: int, payload: Any, text: str) -> KubeError:
    if isinstance(payload, dict):
        return KubeError(status, str(payload.get("reason", "")), str(payload.get("message", "")))
    return KubeError(status, "", text[:200])
