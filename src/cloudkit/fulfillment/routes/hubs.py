"""Hubs (private): the clusters records are placed on, as a kubeconfig reference and a namespace."""

from __future__ import annotations

from fastapi import APIRouter

from cloudkit.fulfillment import models
from cloudkit.fulfillment.routes.resources import Resource, router
from cloudkit.fulfillment.updates import Writable

PREFIX = "/api/private/v1/hubs"

HUBS = Resource(
    kind="hubs",
    model=models.Hub,
    patch_model=models.HubPatch,
    list_model=models.HubList,
    stored_model=models.Hub,
    writable=Writable(
        (
            "spec",
            "status",
            "metadata.name",
            "metadata.labels",
            "metadata.annotations",
            "metadata.finalizers",
        ),
        models.Hub,
    ),
    view=lambda obj: obj,
    private=True,
)


def hubs_router() -> APIRouter:
    return router(HUBS, PREFIX)
