"""Kubernetes I/O of the operator: read instances, list VMs, write status and finalizers, events.

Client: kubernetes_asyncio. Why not kopf's own API client: it is private (kopf._cogs) and may
change in any release, and kopf's watch stream only feeds the watch cache (cache.py), while the
reads that must be fresh (reconcile.py says which) need a client of their own. Why not the sync
`kubernetes` client in threads: every call would hold a thread of a 2-core budget.
kubernetes_asyncio is maintained, async, and loads credentials the way kubectl does (KUBECONFIG /
an explicit file, or the in-cluster service account, with token refresh), so the operator and
kopf (which logs in through the sync client's loader) agree on which cluster they talk to.

Every write carries the resourceVersion it was computed from; a precondition failure raises
Conflict so the reconcile can re-read and start over. A 404 on a read returns None. What is read
out of the objects, and the bodies sent, are pure functions in kube_objects.py. Every call has a
deadline (REQUEST_TIMEOUT_S; kubernetes_asyncio has none by default): an API server that stops
answering fails the reconcile with a TimeoutError, which the work queue retries with back-off,
instead of holding a worker for good.

VirtualMachineInstances (KubeVirt names each as its VM, in the VM's namespace) are read with
the VMs, for their creation time (restarts) and address (`status.ipAddress`), and deleted to
restart a VM. Where KubeVirt is not installed, both CRDs are missing: reads find nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.api.events import instance_event
from cloudkit.lifecycle.types import RecordEvent, VirtualMachineObservation
from cloudkit.operator.environment_lookups import without_environment_lookups
from cloudkit.operator.kube_objects import (
    InstanceKey,
    ObjectKey,
    VmListing,
    describe,
    finalizers_patch,
    object_key,
    retry_after,
    status_message,
    vmi_lookups,
)

COMPONENT = "cloudkit-operator"
REQUEST_TIMEOUT_S = 15.0
"""The deadline of one API call (the whole exchange); two loaded cores answer within it."""


def instance_path(namespace: str, name: str) -> str:
    """The API path of a ComputeInstance (names quoted whole, as the generated client does)."""
    return (
        f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{quote(namespace, safe='')}"
        f"/{names.PLURAL}/{quote(name, safe='')}"
    )


class KubeError(Exception):
    """A Kubernetes API call failed; the message is short and never holds credentials."""

    def __init__(self, what: str, error: ApiException) -> None:
        self.status = error.status
        self.retry_after = retry_after(error.headers)
        detail = status_message(error.body, error.reason)
        super().__init__(f"{what}: {error.status} {detail}".strip())


class Conflict(KubeError):
    """The object changed since it was read (409 on a resourceVersion precondition)."""


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


class _BoundedApiClient(client.ApiClient):
    """Gives every request without a deadline of its own REQUEST_TIMEOUT_S, and reports each
    request (by verb) to `on_request`, for the API-requests metric."""

    def __init__(
        self,
        configuration: client.Configuration,
        on_request: Callable[[str], None] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ):
        super().__init__(configuration=configuration)
        self._on_request = on_request
        self._timeout_s = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self._on_request is not None:
            self._on_request(method)
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = self._timeout_s
        return super().request(method, url, *args, **kwargs)


class Kube:
    """The handful of API calls a reconcile needs, over one shared ApiClient."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    async def connect(
        cls,
        kubeconfig: Path | None = None,
        on_request: Callable[[str], None] | None = None,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Kube:
        """on_request(verb) is called before every HTTP request (kopf's own watches aside);
        each request has `timeout_s` to complete."""
        configuration = await load_configuration(kubeconfig)
        api = _BoundedApiClient(configuration, on_request, timeout_s)
        return cls(without_environment_lookups(api))

    async def close(self) -> None:
        await self._api.close()

    async def get_instance(self, key: InstanceKey) -> dict[str, Any] | None:
        """The instance as the API server has it now: a fresh GET, never the watch cache (the
        reconciler's cached reads are in reconcile.py); None if it is gone."""
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
        listing = await self.list_vm_objects(instance_name)
        return None if listing is None else listing.observations()

    async def list_vm_objects(self, instance_name: str) -> VmListing | None:
        """A fresh list of the VMs labelled with the instance, in all namespaces, with their
        VMIs; None if KubeVirt is not there."""
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
        vms = [vm for vm in listed.get("items") or [] if isinstance(vm, dict)]
        vmis = await self._vmis_of([object_key(vm) for vm in vms])
        version = (listed.get("metadata") or {}).get("resourceVersion")
        return VmListing(vms, vmis, version if isinstance(version, str) else None)

    async def _vmis_of(self, vms: list[ObjectKey]) -> dict[ObjectKey, dict[str, Any]]:
        """The VirtualMachineInstance named as each VM, where one exists."""
        found: dict[ObjectKey, dict[str, Any]] = {}
        for namespace, vm_names in vmi_lookups(vms).items():
            if len(vm_names) == 1:
                vmi = await self._get_vmi(namespace, vm_names[0])
                if vmi is not None:
                    found[(namespace, vm_names[0])] = vmi
                continue
            for vmi in await self._list_vmis(namespace):
                if object_key(vmi)[1] in vm_names:
                    found[object_key(vmi)] = vmi
        return found

    async def _get_vmi(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            vmi: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, namespace, names.VMI_PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:  # none (halted, being re-created), or no VMI CRD at all
                return None
            raise KubeError(f"reading VirtualMachineInstance {namespace}/{name}", error) from None
        return vmi

    async def _list_vmis(self, namespace: str) -> list[dict[str, Any]]:
        try:
            listed = await self._custom.list_namespaced_custom_object(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, namespace, names.VMI_PLURAL
            )
        except ApiException as error:
            if error.status == 404:  # the VirtualMachineInstance CRD is not installed
                return []
            raise KubeError(f"listing VirtualMachineInstances in {namespace}", error) from None
        return [i for i in listed.get("items") or [] if isinstance(i, dict)]

    async def delete_vmi(self, namespace: str, name: str) -> bool:
        """Delete the VirtualMachineInstance `namespace/name` (KubeVirt re-creates it for a
        running VM: a restart). False if there is none (404); other failures raise KubeError."""
        try:
            await self._custom.delete_namespaced_custom_object(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, namespace, names.VMI_PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise KubeError(f"deleting VirtualMachineInstance {namespace}/{name}", error) from None
        return True

    async def replace_status(
        self, instance: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Write the whole status, conditional on the instance's resourceVersion; None if gone."""
        metadata = instance["metadata"]
        body = {**instance, "status": status}
        path = instance_path(metadata["namespace"], metadata["name"]) + "/status"
        try:
            written = await self._send_json("PUT", path, body)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _write_error(f"writing the status of {describe(instance)}", error) from None
        return written

    async def _send_json(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request with a JSON body (plain JSON data, dumped once by the client's REST
        layer) and a JSON object answer, parsed once.

        Written by hand around the generated call (`replace_namespaced_custom_object_status`)
        for the operator's most frequent request, ten per lifecycle: the generated call walks
        the body with `sanitize_for_serialization` (meant for models; ours is JSON already),
        rebuilds its headers and parameters per call and runs the answer through `deserialize`,
        about a quarter of a status write's CPU outside the request itself (py-spy, N = 300).
        What matters is kept from the library: its auth (`update_params_for_auth`, token
        refresh included), its REST layer (the session, TLS, this client's deadline and request
        metric) and its errors (ApiException on a non-2xx answer).
        """
        api = self._api
        headers = {
            **api.default_headers,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        await api.update_params_for_auth(headers, [], ["BearerToken"])
        host = api.configuration.host or ""
        response = await api.request(method, host + path, headers=headers, body=body)
        answer = json.loads(response.data)
        if not isinstance(answer, dict):
            raise ValueError(f"{method} {path}: the API server answered no object")
        return answer

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
        patch = finalizers_patch(instance, finalizers)
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
            what = f"updating the finalizers of {describe(instance)}"
            if error.status == 422:
                raise Conflict(what, error) from None
            raise _write_error(what, error) from None
        return patched

    async def record_event(self, instance: dict[str, Any], event: RecordEvent) -> None:
        """A core/v1 Event about the instance. Failing to record one never fails a reconcile."""
        metadata = instance["metadata"]
        body = instance_event(
            metadata,
            reason=event.reason,
            message=event.message,
            type_=str(event.type),
            component=COMPONENT,
            reporting_instance=os.environ.get("HOSTNAME", COMPONENT),
        )
        what = f"recording an event on {describe(instance)}"
        try:
            # A plain dict serializes like the model; the stubs only name the model. The answer
            # is not turned into a V1Event (nobody reads it; that parse was ~6% of the
            # operator's CPU at scale), so its status is checked here as the library would.
            response = cast(
                aiohttp.ClientResponse,
                await self._core.create_namespaced_event(
                    metadata["namespace"], cast(Any, body), _preload_content=False
                ),
            )
        except ApiException as error:
            raise KubeError(what, error) from None
        try:
            data = await response.read()
            if not 200 <= response.status <= 299:
                refused = ApiException(status=response.status, reason=response.reason)
                refused.body, refused.headers = data, response.headers
                raise KubeError(what, refused)
        finally:
            response.release()


def _write_error(what: str, error: ApiException) -> KubeError:
    if error.status == 409:
        return Conflict(what, error)
    return KubeError(what, error)
