"""Kubernetes I/O of the operator: read instances, list VMs, write status and finalizers, events.

Client: kubernetes_asyncio. Why not kopf's own API client: it is private (kopf._cogs) and may
change in any release, and kopf's watch stream is a cache-like feed, while every reconcile must
read the object fresh. Why not the sync `kubernetes` client in threads: every call would hold
a thread of a 2-core budget. kubernetes_asyncio is maintained, async, and loads credentials the
way kubectl does (KUBECONFIG / an explicit file, or the in-cluster service account, with token
refresh), so the operator and kopf (which logs in through the sync client's loader) agree on
which cluster they talk to.

Every write carries the resourceVersion it was computed from; a precondition failure raises
Conflict so the reconcile can re-read and start over. A 404 on a read returns None.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.lifecycle.types import RecordEvent, VirtualMachineObservation

COMPONENT = "cloudkit-operator"


class KubeError(Exception):
    """A Kubernetes API call failed; the message is short and never holds credentials."""

    def __init__(self, what: str, error: ApiException) -> None:
        self.status = error.status
        detail = _status_message(error)
        super().__init__(f"{what}: {error.status} {detail}".strip())


class Conflict(KubeError):
    """The object changed since it was read (409 on a resourceVersion precondition)."""


def _status_message(error: ApiException) -> str:
    raw: Any = error.body
    body = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        parsed = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:300]
    return str(error.reason or "")


async def load_configuration(kubeconfig: Path | None = None) -> client.Configuration:
    """An explicit kubeconfig, else KUBECONFIG, else the in-cluster account, else ~/.kube/config.

    With config_file=None the library reads KUBECONFIG itself (several files merged, as kubectl).
    """
    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if kubeconfig is None and not os.environ.get("KUBECONFIG") and in_cluster:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    await config.load_kube_config(
        config_file=str(kubeconfig) if kubeconfig else None,
        client_configuration=configuration,
        persist_config=False,
    )
    return configuration


@dataclass(frozen=True, slots=True)
class InstanceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def vm_observation(vm: dict[str, Any]) -> VirtualMachineObservation:
    """Readiness from the VM's Ready condition; the printable status as KubeVirt shows it."""
    metadata = vm.get("metadata") or {}
    status = vm.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    )
    return VirtualMachineObservation(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        ready=ready or bool(status.get("ready")),
        printable_status=str(status.get("printableStatus") or ""),
    )


class _CountingApiClient(client.ApiClient):
    """Reports every HTTP request it makes (by verb), for the API-requests metric."""

    def __init__(self, configuration: client.Configuration, on_request: Callable[[str], None]):
        super().__init__(configuration=configuration)
        self._on_request = on_request

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self._on_request(method)
        return super().request(method, url, *args, **kwargs)


class Kube:
    """The handful of API calls a reconcile needs, over one shared ApiClient."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    async def connect(
        cls, kubeconfig: Path | None = None, on_request: Callable[[str], None] | None = None
    ) -> Kube:
        """on_request(verb) is called before every HTTP request (kopf's own watches aside)."""
        configuration = await load_configuration(kubeconfig)
        if on_request is None:
            return cls(client.ApiClient(configuration=configuration))
        return cls(_CountingApiClient(configuration, on_request))

    async def close(self) -> None:
        await self._api.close()

    async def get_instance(self, key: InstanceKey) -> dict[str, Any] | None:
        """The instance as the API server has it now (never a cache); None if it is gone."""
        try:
            found: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                names.GROUP, names.VERSION, key.namespace, names.PLURAL, key.name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"reading {key}", error) from None
        return found

    async def list_vms(self, instance_name: str) -> tuple[VirtualMachineObservation, ...] | None:
        """VMs labelled with the instance, in all namespaces; None if KubeVirt is not there."""
        selector = f"{names.VM_INSTANCE_LABEL}={instance_name}"
        try:
            listed = await self._custom.list_cluster_custom_object(
                names.KUBEVIRT_GROUP,
                names.KUBEVIRT_VERSION,
                names.VM_PLURAL,
                label_selector=selector,
            )
        except ApiException as error:
            if error.status == 404:  # the VirtualMachine CRD is not installed (yet)
                return None
            raise KubeError("listing VirtualMachines", error) from None
        items = listed.get("items") or []
        return tuple(vm_observation(vm) for vm in items if isinstance(vm, dict))

    async def replace_status(
        self, instance: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Write the whole status, conditional on the instance's resourceVersion; None if gone."""
        metadata = instance["metadata"]
        body = {**instance, "status": status}
        try:
            written: dict[str, Any] = await self._custom.replace_namespaced_custom_object_status(
                names.GROUP,
                names.VERSION,
                metadata["namespace"],
                names.PLURAL,
                metadata["name"],
                body,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _write_error(f"writing the status of {_describe(instance)}", error) from None
        return written

    async def set_finalizers(
        self, instance: dict[str, Any], finalizers: list[str]
    ) -> dict[str, Any] | None:
        """Replace the finalizer list, conditional on the resourceVersion.

        A JSON patch whose first operation tests the resourceVersion: if the object changed
        since it was read the whole patch fails (422, or 409) and nothing is lost or duplicated.
        Returns the patched object, or None if it is gone (removing our finalizer can be the
        last thing that keeps it).
        """
        metadata = instance["metadata"]
        patch = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": metadata["resourceVersion"],
            },
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ]
        try:
            patched: dict[str, Any] = await self._custom.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                metadata["namespace"],
                names.PLURAL,
                metadata["name"],
                patch,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            what = f"updating the finalizers of {_describe(instance)}"
            if error.status == 422:
                raise Conflict(what, error) from None
            raise _write_error(what, error) from None
        return patched

    async def record_event(self, instance: dict[str, Any], event: RecordEvent) -> None:
        """A core/v1 Event about the instance. Failing to record one never fails a reconcile."""
        metadata = instance["metadata"]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{secrets.token_hex(8)}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": str(event.type),
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            # A plain dict serializes like the model; the stubs only name the model.
            await self._core.create_namespaced_event(metadata["namespace"], cast(Any, body))
        except ApiException as error:
            raise KubeError(f"recording an event on {_describe(instance)}", error) from None


def _describe(instance: dict[str, Any]) -> str:
    metadata = instance.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def _write_error(what: str, error: ApiException) -> KubeError:
    if error.status == 409:
        return Conflict(what, error)
    return KubeError(what, error)
