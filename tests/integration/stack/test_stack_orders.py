"""`cloudkit up`'s fulfillment controller: the stack registers its own cluster as a hub, the
controller runs as its own ServiceAccount with only the rights it uses, and a tenant's order
becomes a ComputeInstance in the watched namespace and goes with it.

Jobs are simulated (the playbooks are not the subject here) and VMs boot in a second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cloudkit.api import names
from cloudkit.fulfillment.client import FulfillmentClient, NotFound
from cloudkit.local.issuer.tokens import mint
from cloudkit.local.stack import StackHandle, start_stack
from cloudkit.local.stack.fulfillment import FulfillmentEndpoint
from cloudkit.local.stack.fulfillment_controller import (
    CONTROLLER_ACCOUNT,
    HUB_REF,
    ControllerPlaces,
)
from cloudkit.local.stack.kube import KubeClient, KubeError, resource_path
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

WITHIN_S = 120.0


def instances_of(namespace: str) -> str:
    return resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=namespace)


async def refused(call: Any) -> int | None:
    """The HTTP status a call was refused with (None: it was allowed)."""
    try:
        await call
    except KubeError as error:
        return error.status
    return None


def check_files(endpoint: FulfillmentEndpoint, places: ControllerPlaces) -> None:
    """The controller's log is where fulfillment.json says; its token and kubeconfig are 0600."""
    assert Path(endpoint.controller_log).is_file()
    for secret in (places.token_file, places.kubeconfig):
        assert secret.stat().st_mode & 0o777 == 0o600


async def check_controller_rights(handle: StackHandle, places: ControllerPlaces) -> None:
    """The hub kubeconfig is the controller's account: ComputeInstances in the instance
    namespace, nothing elsewhere, no Secrets to read beyond its own namespace's user data."""
    async with KubeClient.from_kubeconfig(places.kubeconfig) as kube:
        review = await kube.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        user = review["status"]["userInfo"]["username"]
        assert user == "system:serviceaccount:" + CONTROLLER_ACCOUNT
        await kube.list_objects(instances_of(handle.instance_namespace))  # allowed
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": "elsewhere"},
            "spec": {"templateID": "t"},
        }
        assert await refused(kube.create(instances_of("default"), body)) == 403
        secrets = resource_path("", "v1", "secrets", namespace="kube-system")
        assert await refused(kube.list_objects(secrets)) == 403


async def test_an_order_becomes_an_instance_on_the_stacks_own_hub(tmp_path: Path) -> None:
    handle = await start_stack(
        provider="aap",
        state_dir=tmp_path / "stack",
        vm_boot_seconds=1,
        simulated_jobs={"run_seconds": 1},
    )
    try:
        endpoint = FulfillmentEndpoint.read(handle.state_dir)
        assert endpoint.hub and endpoint.hub == handle.hub_id
        places = ControllerPlaces(handle.state_dir / "fulfillment-controller")
        assert handle.controller_token_file == places.token_file
        check_files(endpoint, places)
        await check_controller_rights(handle, places)

        ca_file = Path(endpoint.ca_file)
        token_file = places.token_file
        async with FulfillmentClient(
            endpoint.address, lambda: token_file.read_text().strip(), ca_file=ca_file, private=True
        ) as admin:
            hubs = await admin.list_all("hubs")
            assert [(h["id"], h["spec"]) for h in hubs] == [
                (handle.hub_id, {"kubeconfig_ref": HUB_REF, "namespace": handle.instance_namespace})
            ]
        issuer = Path(endpoint.issuer_dir)
        async with (
            FulfillmentClient(
                endpoint.address, lambda: mint(issuer, tenant="acme"), ca_file=ca_file
            ) as acme,
            KubeClient.from_kubeconfig(handle.kubeconfig) as kube,
        ):
            order = await acme.create({"metadata": {"name": "web"}, "spec": {"template": "t"}})
            selector = {"labelSelector": f"{names.INSTANCE_UUID_LABEL}={order['id']}"}
            path = instances_of(handle.instance_namespace)

            async def instances() -> list[dict[str, Any]]:
                return list((await kube.list_objects(path, **selector)).get("items") or [])

            (made,) = await until(instances, bool, within=WITHIN_S, what="the order's instance")
            annotations = made["metadata"].get("annotations") or {}
            assert annotations.get(names.TENANT_ANNOTATION) == "acme"
            assert made["metadata"]["name"].startswith("vm-")

            async def record() -> dict[str, Any] | None:
                try:
                    return await acme.get(order["id"])
                except NotFound:
                    return None

            await until(instances, lambda found: bool(found and found[0].get("status")),
                        within=WITHIN_S, what="the operator at work on it")  # fmt: skip
            await acme.delete(order["id"])
            await until(record, lambda r: r is None, within=WITHIN_S, what="the record gone")
            assert await instances() == []  # the record goes only once its instance is gone
    finally:
        await asyncio.shield(handle.stop())
