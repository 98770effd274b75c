"""The operator's Kubernetes session does not consult the environment per request unless a
proxy variable asks for it, and still talks to a real HTTP server through the kept pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from cloudkit.operator.environment_lookups import proxied, without_environment_lookups


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def namespaces(request: web.Request) -> web.Response:
        return web.json_response({"kind": "NamespaceList", "apiVersion": "v1", "items": []})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", namespaces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def api_client(host: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = host
    return client.ApiClient(configuration=configuration)


async def test_without_proxy_variables_the_session_looks_nowhere(server: str) -> None:
    api = without_environment_lookups(api_client(server), environ={})
    try:
        assert api.rest_client.pool_manager.trust_env is False
        listed = await client.CoreV1Api(api).list_namespace()
        assert listed.items == []
    finally:
        await api.close()


async def test_a_proxy_variable_keeps_the_library_behaviour(server: str) -> None:
    api = without_environment_lookups(api_client(server), environ={"https_proxy": "http://p:3128"})
    try:
        assert api.rest_client.pool_manager.trust_env is True
    finally:
        await api.close()


def test_proxy_variables_in_either_case_count() -> None:
    assert proxied({"HTTPS_PROXY": "http://p:3128"})
    assert proxied({"no_proxy": "10.0.0.0/8"})
    assert not proxied({"HTTPS_PROXY": "", "PATH": "/bin"})
