"""The store's interface and its errors: what the routes, the controller and the tests rely on.

An object is the wire form as a plain dict: `{"id", "metadata", "spec", "status"}` with
`metadata = {"name", "tenant", "creator", "labels", "annotations", "version",
"creation_timestamp", "deletion_timestamp", "finalizers"}` (timestamps RFC 3339 UTC strings,
`deletion_timestamp` absent until deleted, `version` an int). The store owns `id`,
`metadata.version`, `metadata.creation_timestamp` and `metadata.deletion_timestamp`: whatever a
caller puts there is overwritten. Everything else is the caller's data, stored and returned
literally (never spliced into SQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Object = dict[str, Any]
Kind = Literal["compute_instances", "hubs"]
EventType = Literal["CREATED", "UPDATED", "DELETED", "SIGNALED"]


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    """No such record in the caller's scope (another tenant's record answers the same)."""


class Conflict(StoreError):
    """`expected_version` was given and the stored record has another version."""


class Unavailable(StoreError):
    """The database cannot be reached or refused the operation for reasons of its own."""


@dataclass(frozen=True)
class Scope:
    """The tenants whose records an operation may see; `tenants=None` means every tenant."""

    tenants: frozenset[str] | None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @classmethod
    def of(cls, *tenants: str) -> Scope:
        return cls(frozenset(tenants))

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


@dataclass(frozen=True)
class OrderKey:
    """One sort key of a list: a dotted path (`metadata.name`) and its direction."""

    path: str
    descending: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a list: `items` after offset and limit, `total` matching records in all."""

    items: list[Object]
    total: int


@dataclass(frozen=True)
class Event:
    """A change, published after its commit. `seq` grows with commits; delivery is at most once."""

    seq: int
    type: EventType
    kind: Kind
    object: Object

    @property
    def tenant(self) -> str:
        return str(self.object["metadata"]["tenant"])


class Store(Protocol):
    """Records of every kind, scoped by tenant, with soft deletion and an event feed.

    Deletion: `delete` sets `deletion_timestamp`; while finalizers remain the record stays
    (UPDATED). When a record has a deletion timestamp and no finalizers (after `delete` or an
    `update` that removed the last one) it moves to the archive in the same transaction and a
    DELETED event follows; after that `get` raises NotFound and `list` does not show it.
    Every change bumps `metadata.version` by one and publishes one event; an update that
    changes nothing writes nothing and publishes nothing.
    """

    async def create(self, kind: Kind, obj: Object) -> Object:
        """Insert a new record (server-assigned id, version 1); publishes CREATED."""
        ...

    async def get(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        """The record, or NotFound."""
        ...

    async def list(
        self,
        kind: Kind,
        *,
        scope: Scope,
        offset: int = 0,
        limit: int = 100,
        order: Sequence[OrderKey] = (),
        match: Callable[[Object], bool] | None = None,
    ) -> Page:
        """Records in scope, sorted (default: creation order), filtered by `match`, one page.

        An unknown order path raises ValueError naming it."""
        ...

    async def update(
        self,
        kind: Kind,
        id: str,
        change: Callable[[Object], Object],
        *,
        scope: Scope,
        expected_version: int | None = None,
    ) -> Object:
        """Apply `change` (a pure function of the stored object) in one transaction.

        Raises NotFound, Conflict (when `expected_version` differs from the stored one), or
        whatever `change` raises (nothing is written then). Returns the stored result."""
        ...

    async def delete(self, kind: Kind, id: str, *, scope: Scope) -> Object:
        """Mark for deletion (idempotent); archives at once when no finalizer holds the record."""
        ...

    async def signal(self, kind: Kind, id: str, *, scope: Scope) -> None:
        """Publish SIGNALED for the record without changing it."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Events committed after the call, in commit order, until the store closes."""
        ...

    async def close(self) -> None: ...
