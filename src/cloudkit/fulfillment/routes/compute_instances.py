"""Compute instances on the public API (tenants) and the private one (controller, admins)."""

from __future__ import annotations

from fastapi import APIRouter

from cloudkit.fulfillment import models
from cloudkit.fulfillment.routes.resources import Resource, router
from cloudkit.fulfillment.updates import Writable

PUBLIC_PREFIX = "/api/fulfillment/v1/compute_instances"
PRIVATE_PREFIX = "/api/private/v1/compute_instances"

PUBLIC = Resource(
    kind="compute_instances",
    model=models.ComputeInstance,
    patch_model=models.ComputeInstancePatch,
    list_model=models.ComputeInstanceList,
    stored_model=models.PrivateComputeInstance,
    writable=Writable(
        ("spec", "metadata.name", "metadata.labels", "metadata.annotations"),
        models.ComputeInstance,
    ),
    view=models.public_view,
    private=False,
    immutable_spec=True,
    system_sections=(("status", lambda: models.wire(models.ComputeInstanceStatus())),),
)

PRIVATE = Resource(
    kind="compute_instances",
    model=models.PrivateComputeInstance,
    patch_model=models.PrivateComputeInstancePatch,
    list_model=models.PrivateComputeInstanceList,
    stored_model=models.PrivateComputeInstance,
    writable=Writable(
        (
            "spec",
            "status",
            "metadata.name",
            "metadata.labels",
            "metadata.annotations",
            "metadata.finalizers",
        ),
        models.PrivateComputeInstance,
    ),
    view=lambda obj: obj,
    private=True,
    immutable_spec=True,
)


def public_router() -> APIRouter:
    return router(PUBLIC, PUBLIC_PREFIX)


def private_router() -> APIRouter:
    return router(PRIVATE, PRIVATE_PREFIX)
