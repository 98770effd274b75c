"""A hub's Kubernetes API as the controller uses it: the resource found by its uuid label,
created, merge-patched and deleted, and its user data Secret.

Reuses the operator's client setup (`operator.kube.load_configuration`, kubernetes_asyncio) and
its error type (`KubeError`: a short message without credentials). Every call has a deadline
(`REQUEST_TIMEOUT_S`): an API server that stops answering fails the reconcile, which the work
queue retries with back-off, instead of holding a worker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.operator.environment_lookups import without_environment_lookups
from cloudkit.operator.kube import KubeError, load_configuration

log = logging.getLogger(__name__)

Object = dict[str, Any]
REQUEST_TIMEOUT_S = 15.0
MERGE_PATCH = "application/merge-patch+json"


class HubClient:
    """One hub's API server, over one ApiClient."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    async def connect(cls, kubeconfig: Path) -> HubClient:
        configuration = await load_configuration(kubeconfig)
        return cls(without_environment_lookups(client.ApiClient(configuration=configuration)))

    @property
    def api_client(self) -> client.ApiClient:
        """The hub's client (the resource watch shares its connection settings)."""
        return self._api

    async def close(self) -> None:
        await self._api.close()

    async def find_resource(self, namespace: str, record_id: str) -> Object | None:
        """The ComputeInstance labelled with the record's id (the oldest, should there be two)."""
        try:
            listed = await self._custom.list_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                label_selector=f"{names.INSTANCE_UUID_LABEL}={record_id}",
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as error:
            raise KubeError(f"listing ComputeInstances in {namespace}", error) from None
        items = [i for i in listed.get("items") or [] if isinstance(i, dict)]
        if len(items) > 1:
            log.warning(
                "record %s has %d ComputeInstances; using the oldest", record_id, len(items)
            )
        items.sort(key=lambda i: str((i.get("metadata") or {}).get("creationTimestamp") or ""))
        return items[0] if items else None

    async def create_resource(self, body: Object) -> Object:
        namespace = body["metadata"]["namespace"]
        try:
            created: Object = await self._custom.create_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                body,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as error:
            raise KubeError(f"creating a ComputeInstance in {namespace}", error) from None
        return created

    async def patch_resource(self, namespace: str, name: str, patch: Object) -> Object | None:
        """A merge patch; None if the resource is gone."""
        try:
            # The stubs omit `_content_type`, which the client takes (as every generated call).
            patched: Object = await self._custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"patching ComputeInstance {namespace}/{name}", error) from None
        return patched

    async def delete_resource(self, namespace: str, name: str) -> None:
        """Ask for the deletion (its finalizers then run); a resource already gone is fine."""
        try:
            await self._custom.delete_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                name,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as error:
            if error.status != 404:
                raise KubeError(f"deleting ComputeInstance {namespace}/{name}", error) from None

    async def get_secret(self, namespace: str, name: str) -> Object | None:
        try:
            found = await self._core.read_namespaced_secret(
                name, namespace, _request_timeout=REQUEST_TIMEOUT_S
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"reading Secret {namespace}/{name}", error) from None
        # Only its presence and metadata matter here; the data never leaves this function.
        return {"metadata": self._api.sanitize_for_serialization(found.metadata)}

    async def create_secret(self, body: Object) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            # A plain dict serializes as the V1Secret the stubs ask for.
            await self._core.create_namespaced_secret(
                namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as error:
            if error.status == 409:  # created by an earlier attempt whose answer was lost
                return
            raise KubeError(
                f"creating Secret {namespace}/{body['metadata']['name']}", error
            ) from None
