"""/openapi.json is generated from the models the server validates with: every route the
application serves is in it and nothing else, and every schema's fields are its model's."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from cloudkit.fulfillment import models
from cloudkit.fulfillment.server import create_app
from tests.harness.fulfillment import FulfillmentService

pytestmark = pytest.mark.stack


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The application's API routes, through the routers it includes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from api_routes(included.routes)


def served_routes() -> set[tuple[str, str]]:
    app = create_app(store=None, authenticator=None)  # type: ignore[arg-type]
    found = {(r.path, m.lower()) for r in api_routes(app.routes) for m in r.methods or ()}
    assert found, "no routes found: has FastAPI changed how it keeps included routers?"
    return found


def wire_models() -> dict[str, type[BaseModel]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(models, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == models.__name__ and name != "Strict"
    }


async def test_every_route_is_documented_and_every_documented_route_is_served(
    service: FulfillmentService,
) -> None:
    async with service.session(None) as http, http.get("/openapi.json") as answer:
        assert answer.status == 200
        document = await answer.json()
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == served_routes()
    assert ("/api/fulfillment/v1/compute_instances/{id}", "patch") in documented
    assert ("/api/events/v1/events", "get") in documented


async def test_every_schema_has_exactly_its_models_fields(service: FulfillmentService) -> None:
    async with service.session(None) as http, http.get("/openapi.json") as answer:
        schemas = (await answer.json())["components"]["schemas"]
    objects = {name: s for name, s in schemas.items() if s.get("type") == "object"}
    by_name = wire_models()
    assert set(objects) == set(by_name), "a model is not documented, or a schema has no model"
    for name, schema in objects.items():
        assert set(schema.get("properties", {})) == set(by_name[name].model_fields), name
        assert schema.get("additionalProperties") is False, f"{name} must refuse unknown fields"
    enums = {name for name, s in schemas.items() if "enum" in s}
    assert enums == {
        "ComputeInstanceState",
        "ComputeInstanceConditionType",
        "ConditionStatus",
        "EventType",
    }
    assert "COMPUTE_INSTANCE_STATE_RUNNING" in schemas["ComputeInstanceState"]["enum"]
