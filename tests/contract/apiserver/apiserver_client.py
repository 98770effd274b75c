"""A small raw-HTTP client for the API server contract tests (real sockets, real TLS)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from cloudkit.local.apiserver.main import ApiServerHandle

WIDGETS_CRD = Path(__file__).with_name("widgets.yaml")
WIDGETS = "/apis/test.cloudkit.dev/v1/namespaces/default/widgets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class Api:
    """JSON requests against one server; every call returns (status, body, headers)."""

    def __init__(self, handle: ApiServerHandle, session: aiohttp.ClientSession) -> None:
        self.handle = handle
        self.session = session
        self.ssl = ssl.create_default_context(cafile=str(handle.ca_cert))

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any, Any]:
        all_headers = {
            "Authorization": f"Bearer {token if token is not None else self.handle.token}",
            "Content-Type": content_type,
            **(headers or {}),
        }
        data = None if body is None else json.dumps(body).encode()
        async with self.session.request(
            method,
            self.handle.url + path,
            data=data,
            params=params,
            headers=all_headers,
            ssl=self.ssl,
        ) as resp:
            text = await resp.text()
            parsed = json.loads(text) if text.strip().startswith(("{", "[")) else text
            return resp.status, parsed, resp.headers

    async def raw(
        self,
        method: str,
        path: str,
        data: Any,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        authorization: str | None = None,
    ) -> tuple[int, Any]:
        """Send `data` (bytes, or an async iterator for a chunked body) as it is."""
        headers = {
            "Authorization": authorization or f"Bearer {self.handle.token}",
            "Content-Type": content_type,
        }
        async with self.session.request(
            method, self.handle.url + path, data=data, params=params, headers=headers, ssl=self.ssl
        ) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text.startswith("{") else text

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data, _ = await self.call(method, path, body, **kw)
        assert status < 300, (status, data)
        return data

    async def install_widgets(self) -> dict[str, Any]:
        crd = yaml.safe_load(WIDGETS_CRD.read_text())
        return await self.ok(  # type: ignore[no-any-return]
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
        )

    def watch(self, path: str, params: dict[str, str]) -> Any:
        return self.session.get(
            self.handle.url + path,
            params={"watch": "true", **params},
            headers={"Authorization": f"Bearer {self.handle.token}"},
            ssl=self.ssl,
        )


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        line = await resp.content.readline()
        if not line:
            break
        events.append(json.loads(line))
    return events


def widget(name: str, size: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.cloudkit.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name, **meta},
        "spec": {"size": size, "zone": "a"},
    }


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {}}
