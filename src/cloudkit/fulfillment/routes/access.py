"""Who is calling and what they may reach: FastAPI dependencies shared by every route.

The bearer token becomes a Caller once, here; routes pass `caller.scope()` to the store, so a
record of another tenant is simply not found. Tokens never reach a log or an answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from cloudkit.fulfillment.caller import Authenticator, Caller, Unauthenticated
from cloudkit.fulfillment.store.base import Store

_BEARER = "bearer "


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def caller_of(request: Request) -> Caller:
    """The authenticated caller, or 401 without detail (the authenticator logs the reason)."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith(_BEARER) or not header[len(_BEARER) :].strip():
        raise HTTPException(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.authenticate(header[len(_BEARER) :].strip())
    except Unauthenticated:
        raise HTTPException(
            401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        ) from None


async def admin_of(caller: Annotated[Caller, Depends(caller_of)]) -> Caller:
    """The private API is for admins (the controller, the operator's feedback, operators)."""
    if not caller.admin:
        raise HTTPException(403, "the private API is for administrators")
    return caller


StoreDep = Annotated[Store, Depends(store_of)]
CallerDep = Annotated[Caller, Depends(caller_of)]
AdminDep = Annotated[Caller, Depends(admin_of)]
