"""kubernetes_asyncio (the operator's client) against the local API server."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import WIDGETS_CRD

pytestmark = pytest.mark.stack
MERGE = "application/merge-patch+json"
GROUP, VERSION, PLURAL = "test.cloudkit.dev", "v1", "widgets"


async def test_custom_objects_typed_events_and_watch(apiserver: ApiServerHandle) -> None:
    api_client = await config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    async with api_client:
        ext = client.ApiextensionsV1Api(api_client)
        await ext.create_custom_resource_definition(yaml.safe_load(WIDGETS_CRD.read_text()))
        # Its stubs name neither the `_content_type` the methods read from their kwargs nor the
        # dict bodies they send as they are: untyped, as the client's users drive it.
        custom: Any = client.CustomObjectsApi(api_client)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 1, "zone": "a"},
        }
        created = await custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, body
        )
        rv = created["metadata"]["resourceVersion"]
        patched = await custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "w1", {"spec": {"size": 3}}, _content_type=MERGE
        )
        assert patched["metadata"]["generation"] == 2
        status = await custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "w1",
            {"status": {"phase": "Ready"}},
            _content_type=MERGE,
        )
        assert status["status"]["phase"] == "Ready"
        # Without _content_type the client sends a dict as JSON patch: the real answer is 400.
        with pytest.raises(ApiException) as info:
            await custom.patch_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, "w1", {"spec": {}}
            )
        assert info.value.status == 400

        core: Any = client.CoreV1Api(api_client)
        await core.create_namespaced_event(
            "default",
            {
                "metadata": {"generateName": "w1."},
                "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
                "reason": "Tested",
                "message": "from kubernetes_asyncio",
                "type": "Normal",
            },
        )
        events = await core.list_namespaced_event(
            "default", field_selector="involvedObject.name=w1"
        )
        assert [e.reason for e in events.items] == ["Tested"]

        seen = []
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=rv,
            timeout_seconds=1,
        )
        async with stream as events_stream:
            async for event in events_stream:
                seen.append((event["type"], event["object"]["metadata"]["resourceVersion"]))
        assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED"]
        assert seen[-1][1] == status["metadata"]["resourceVersion"]
