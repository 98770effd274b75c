"""List, get, create, update and delete for one kind of record, public or private.

One factory serves compute instances (public and private) and hubs (private), so the routes
of every kind behave alike. Handlers are thin: validate (pydantic, by FastAPI), scope by
caller, call the store, answer with the view the API shows.
"""

# No `from __future__ import annotations`: FastAPI reads these handlers' annotations at run
# time, and the body models are variables of the factory.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cloudkit.fulfillment.caller import Caller
from cloudkit.fulfillment.filters import parse_filter, parse_order
from cloudkit.fulfillment.models import Error, wire
from cloudkit.fulfillment.routes.access import StoreDep, admin_of, caller_of
from cloudkit.fulfillment.store.base import Kind, Object
from cloudkit.fulfillment.updates import (
    UpdateRefused,
    Writable,
    check_immutable,
    implicit_mask,
    merge,
    parse_mask,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Resource:
    """How one API shows and changes one kind of record."""

    kind: Kind
    model: type[BaseModel]  # the object, as created and answered
    patch_model: type[BaseModel]  # the same with every field optional (PATCH bodies)
    list_model: type[BaseModel]
    stored_model: type[BaseModel]  # the full (private) object: what a merged update must be
    writable: Writable
    view: Callable[[Object], Object]
    private: bool
    immutable_spec: bool = False
    # Sections the system owns on this API: whatever the body says, a new record starts so.
    system_sections: tuple[tuple[str, Callable[[], Object]], ...] = ()


def _answer(obj: Object) -> JSONResponse:
    return JSONResponse(obj)


def router(res: Resource, prefix: str) -> APIRouter:
    """The routes of `res` under `prefix` (e.g. /api/fulfillment/v1/compute_instances)."""
    who = Depends(admin_of if res.private else caller_of)
    Model, PatchModel, ListModel = res.model, res.patch_model, res.list_model
    side = "private" if res.private else "public"
    api = APIRouter(prefix=prefix, responses=ERRORS, tags=[res.kind])

    @api.get(
        "",
        operation_id=f"{side}_{res.kind}_list",
        response_model=ListModel,
        summary=f"List {res.kind}",
    )
    async def list_records(
        store: StoreDep,
        caller: Caller = who,
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=0, le=MAX_LIMIT),
        filter: str | None = Query(None, description="CEL over the object as `this`."),
        order: str | None = Query(None, description="`field.path [asc|desc], ...`"),
    ) -> JSONResponse:
        selected = parse_filter(filter)
        keys = parse_order(order, res.model)
        match = None
        if selected is not None:

            def match(obj: Object) -> bool:
                return selected.matches(res.view(obj))

        page = await store.list(
            res.kind,
            scope=caller.scope(),
            offset=offset,
            limit=limit,
            order=keys,
            match=match,
        )
        items = [res.view(obj) for obj in page.items]
        return _answer({"size": len(items), "total": page.total, "items": items})

    @api.get(
        "/{id}",
        operation_id=f"{side}_{res.kind}_get",
        response_model=Model,
        summary=f"Get one of {res.kind}",
    )
    async def get_record(id: str, store: StoreDep, caller: Caller = who) -> JSONResponse:
        return _answer(res.view(await store.get(res.kind, id, scope=caller.scope())))

    @api.post(
        "",
        operation_id=f"{side}_{res.kind}_create",
        response_model=Model,
        summary=f"Create one of {res.kind}",
    )
    async def create_record(
        body: Model,  # type: ignore[valid-type]
        store: StoreDep,
        caller: Caller = who,
    ) -> JSONResponse:
        obj = wire(cast(BaseModel, body))
        obj.pop("id", None)
        for section, initial in res.system_sections:
            obj[section] = initial()
        metadata = obj.setdefault("metadata", {})
        # A tenant's records are its own; an admin (every tenant) may create for one.
        if not (res.private and metadata.get("tenant")):
            metadata["tenant"] = caller.tenant
        metadata["creator"] = caller.user
        return _answer(res.view(await store.create(res.kind, obj)))

    @api.patch(
        "/{id}",
        operation_id=f"{side}_{res.kind}_update",
        response_model=Model,
        summary=f"Update one of {res.kind}",
    )
    async def update_record(
        id: str,
        body: PatchModel,  # type: ignore[valid-type]
        store: StoreDep,
        caller: Caller = who,
        update_mask: str | None = Query(
            None, description="Field paths to change, comma separated (e.g. spec.run_strategy)."
        ),
        lock: bool = Query(False, description="Refuse (409) unless metadata.version matches."),
    ) -> JSONResponse:
        sent = cast(BaseModel, body).model_dump(mode="json", exclude_unset=True)
        mask = parse_mask(update_mask)
        if mask is None:
            mask = implicit_mask(sent, res.writable)
        for path in mask:
            res.writable.check(path)
        expected = (sent.get("metadata") or {}).get("version") if lock else None
        if lock and expected is None:
            raise UpdateRefused("metadata.version", "required when lock is set")

        def change(current: Object) -> Object:
            updated = merge(current, sent, mask)
            if res.immutable_spec:
                check_immutable(current, updated)
            res.stored_model.model_validate(updated)  # ValidationError: 422 naming the field
            return updated

        updated = await store.update(
            res.kind, id, change, scope=caller.scope(), expected_version=expected
        )
        return _answer(res.view(updated))

    @api.delete(
        "/{id}",
        operation_id=f"{side}_{res.kind}_delete",
        response_model=Model,
        summary=f"Delete one of {res.kind}",
    )
    async def delete_record(id: str, store: StoreDep, caller: Caller = who) -> JSONResponse:
        return _answer(res.view(await store.delete(res.kind, id, scope=caller.scope())))

    if res.private:

        @api.post(
            "/{id}/signal",
            operation_id=f"{side}_{res.kind}_signal",
            summary=f"Publish SIGNALED for one of {res.kind}",
        )
        async def signal_record(id: str, store: StoreDep, caller: Caller = who) -> JSONResponse:
            await store.signal(res.kind, id, scope=caller.scope())
            return _answer({})

    return api
