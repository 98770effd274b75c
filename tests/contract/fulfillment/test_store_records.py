"""The store's records on every database: create, read, list, update, delete, archive, tenancy."""

from __future__ import annotations

from typing import Any

import pytest

from cloudkit.fulfillment.store.base import (
    Conflict,
    Kind,
    NotFound,
    Object,
    OrderKey,
    Scope,
    Store,
)

ACME = Scope.of("acme")
GLOBEX = Scope.of("globex")
ADMIN = Scope.everything()
CI: Kind = "compute_instances"


def instance(name: str, tenant: str = "acme", **metadata: Any) -> Object:
    return {
        "metadata": {"name": name, "tenant": tenant, "creator": "alice", **metadata},
        "spec": {"template": "small", "template_parameters": {"cpu": "2"}},
        "status": {"state": "STARTING"},
    }


async def test_create_assigns_what_the_store_owns_and_get_returns_it(store: Store) -> None:
    sent = instance("web", id="forged", version=7, creation_timestamp="1970-01-01T00:00:00Z")
    sent["id"] = "forged"
    sent["metadata"]["deletion_timestamp"] = "1970-01-01T00:00:00Z"
    created = await store.create(CI, sent)

    assert created["id"] != "forged"
    meta = created["metadata"]
    assert meta["version"] == 1
    assert meta["creation_timestamp"] != "1970-01-01T00:00:00Z"
    assert meta["creation_timestamp"].endswith("Z")
    assert "deletion_timestamp" not in meta
    assert (meta["name"], meta["tenant"], meta["creator"]) == ("web", "acme", "alice")
    assert created["spec"] == sent["spec"]
    assert created["status"] == sent["status"]
    assert await store.get(CI, created["id"], scope=ACME) == created
    assert await store.get(CI, created["id"], scope=ADMIN) == created


async def test_another_tenants_record_answers_as_a_missing_one(store: Store) -> None:
    created = await store.create(CI, instance("web"))
    for operation in (
        store.get(CI, created["id"], scope=GLOBEX),
        store.update(CI, created["id"], lambda o: o, scope=GLOBEX),
        store.delete(CI, created["id"], scope=GLOBEX),
        store.signal(CI, created["id"], scope=GLOBEX),
        store.get(CI, "no-such-id", scope=ACME),
    ):
        with pytest.raises(NotFound):
            await operation
    # Untouched by the other tenant's attempts.
    assert await store.get(CI, created["id"], scope=ACME) == created
    assert (await store.list(CI, scope=GLOBEX)).total == 0


async def test_list_is_scoped_ordered_paged_and_counted(store: Store) -> None:
    names = ["c", "a", "e", "b", "d"]
    for name in names:
        await store.create(CI, instance(name))
    await store.create(CI, instance("z", tenant="globex"))

    page = await store.list(CI, scope=ACME)
    assert [o["metadata"]["name"] for o in page.items] == names  # creation order
    assert page.total == 5

    page = await store.list(CI, scope=ACME, order=[OrderKey("metadata.name")], offset=1, limit=2)
    assert [o["metadata"]["name"] for o in page.items] == ["b", "c"]
    assert page.total == 5

    page = await store.list(CI, scope=ACME, order=[OrderKey("metadata.name", descending=True)])
    assert [o["metadata"]["name"] for o in page.items] == ["e", "d", "c", "b", "a"]

    everything = await store.list(CI, scope=ADMIN, limit=3)
    assert everything.total == 6
    assert len(everything.items) == 3
    assert (await store.list(CI, scope=Scope.of("acme", "globex"))).total == 6
    assert (await store.list(CI, scope=Scope.of())).total == 0


async def test_list_by_a_field_of_the_spec_or_status(store: Store) -> None:
    for name, state in [("a", "RUNNING"), ("b", "FAILED"), ("c", "STARTING")]:
        await store.create(CI, {**instance(name), "status": {"state": state}})
    page = await store.list(CI, scope=ACME, order=[OrderKey("status.state")])
    assert [o["status"]["state"] for o in page.items] == ["FAILED", "RUNNING", "STARTING"]


async def test_list_match_filters_before_paging_and_counting(store: Store) -> None:
    for index in range(10):
        await store.create(CI, instance(f"vm-{index}", labels={"even": str(index % 2 == 0)}))
    page = await store.list(
        CI,
        scope=ACME,
        offset=1,
        limit=2,
        order=[OrderKey("metadata.name", descending=True)],
        match=lambda o: o["metadata"]["labels"]["even"] == "True",
    )
    assert page.total == 5
    assert [o["metadata"]["name"] for o in page.items] == ["vm-6", "vm-4"]


async def test_an_unknown_order_path_is_refused_by_name(store: Store) -> None:
    for path in ["metadata.nope", "spec", "spec.a-b", "data", "spec.x; DROP TABLE x"]:
        with pytest.raises(ValueError, match="order"):
            await store.list(CI, scope=ACME, order=[OrderKey(path)])


async def test_a_negative_offset_or_limit_is_refused(store: Store) -> None:
    for offset, limit in [(-1, 10), (0, -1)]:
        with pytest.raises(ValueError, match="offset and limit"):
            await store.list(CI, scope=ACME, offset=offset, limit=limit)


async def test_update_bumps_the_version_and_keeps_what_the_store_owns(store: Store) -> None:
    created = await store.create(CI, instance("web"))

    def rename(obj: Object) -> Object:
        obj["metadata"].update(name="api", version=99, tenant="globex", creation_timestamp="x")
        obj["id"] = "forged"
        obj["status"]["state"] = "RUNNING"
        return obj

    updated = await store.update(CI, created["id"], rename, scope=ACME)
    assert updated["id"] == created["id"]
    assert updated["metadata"]["version"] == 2
    assert updated["metadata"]["name"] == "api"
    assert updated["metadata"]["tenant"] == "acme"
    assert updated["metadata"]["creation_timestamp"] == created["metadata"]["creation_timestamp"]
    assert updated["status"]["state"] == "RUNNING"
    assert await store.get(CI, created["id"], scope=ACME) == updated


async def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(store: Store) -> None:
    created = await store.create(CI, instance("web"))
    await store.update(CI, created["id"], _set_state("RUNNING"), scope=ACME, expected_version=1)
    with pytest.raises(Conflict, match="version"):
        await store.update(CI, created["id"], _set_state("FAILED"), scope=ACME, expected_version=1)
    stored = await store.get(CI, created["id"], scope=ACME)
    assert (stored["metadata"]["version"], stored["status"]["state"]) == (2, "RUNNING")


async def test_an_update_that_changes_nothing_writes_nothing(store: Store) -> None:
    created = await store.create(CI, instance("web"))
    events = store.events()
    same = await store.update(CI, created["id"], _set_state("STARTING"), scope=ACME)
    assert same == created
    assert (await store.get(CI, created["id"], scope=ACME))["metadata"]["version"] == 1
    await store.signal(CI, created["id"], scope=ACME)  # the next event, if nothing came before
    assert (await anext(aiter(events))).type == "SIGNALED"


async def test_a_failing_change_writes_nothing(store: Store) -> None:
    created = await store.create(CI, instance("web"))

    def refuse(obj: Object) -> Object:
        obj["status"]["state"] = "FAILED"
        raise ValueError("spec.template: immutable")

    with pytest.raises(ValueError, match="immutable"):
        await store.update(CI, created["id"], refuse, scope=ACME)
    assert await store.get(CI, created["id"], scope=ACME) == created


async def test_delete_without_finalizers_archives_at_once(store: Store) -> None:
    created = await store.create(CI, instance("web"))
    deleted = await store.delete(CI, created["id"], scope=ACME)
    assert deleted["metadata"]["deletion_timestamp"]
    assert deleted["metadata"]["version"] == 2
    with pytest.raises(NotFound):
        await store.get(CI, created["id"], scope=ACME)
    assert (await store.list(CI, scope=ADMIN)).total == 0
    with pytest.raises(NotFound):
        await store.delete(CI, created["id"], scope=ACME)


async def test_delete_with_finalizers_waits_for_the_last_one(store: Store) -> None:
    created = await store.create(CI, instance("web", finalizers=["controller", "feedback"]))
    marked = await store.delete(CI, created["id"], scope=ACME)
    when = marked["metadata"]["deletion_timestamp"]
    assert marked["metadata"]["finalizers"] == ["controller", "feedback"]
    # Idempotent: a second delete changes nothing.
    assert await store.delete(CI, created["id"], scope=ACME) == marked
    assert (await store.get(CI, created["id"], scope=ACME))["metadata"]["version"] == 2

    after_one = await store.update(CI, created["id"], _drop_finalizer("controller"), scope=ACME)
    assert after_one["metadata"]["finalizers"] == ["feedback"]
    assert after_one["metadata"]["deletion_timestamp"] == when
    assert (await store.list(CI, scope=ACME)).total == 1

    last = await store.update(CI, created["id"], _drop_finalizer("feedback"), scope=ADMIN)
    assert last["metadata"]["finalizers"] == []
    with pytest.raises(NotFound):
        await store.get(CI, created["id"], scope=ADMIN)


async def test_a_record_without_deletion_keeps_living_without_finalizers(store: Store) -> None:
    created = await store.create(CI, instance("web", finalizers=["controller"]))
    await store.update(CI, created["id"], _drop_finalizer("controller"), scope=ACME)
    assert (await store.get(CI, created["id"], scope=ACME))["metadata"]["finalizers"] == []


async def test_sql_metacharacters_are_stored_and_returned_literally(store: Store) -> None:
    hostile = [
        "'; DROP TABLE compute_instances; --",
        'a"b\\c',
        "%s %(x)s ? $1 :name",
        "x' OR '1'='1",
        "\u00e9\u4e2d\U0001f600",
        "line\nbreak\ttab",
        "$.spec[0]",
        "{}[]",
    ]
    text = " ".join(hostile)
    sent: dict[str, Any] = {
        "metadata": {
            "name": text,
            "tenant": text,
            "creator": text,
            "labels": {h: h for h in hostile},
            "annotations": {text: text},
            "finalizers": hostile,
        },
        "spec": {"template": text, "template_parameters": {h: h for h in hostile}},
        "status": {"state": text},
    }
    created = await store.create(CI, sent)
    scope = Scope.of(text)
    stored = await store.get(CI, created["id"], scope=scope)
    assert stored == created
    for field in ("name", "tenant", "creator", "annotations", "labels", "finalizers"):
        assert stored["metadata"][field] == sent["metadata"][field], field
    assert stored["spec"] == sent["spec"]
    assert stored["status"] == sent["status"]
    page = await store.list(CI, scope=scope, order=[OrderKey("spec.template")])
    assert page.items == [stored]
    # A tenant whose name is an injection gets nothing of another's.
    await store.create(CI, instance("other"))
    assert (await store.list(CI, scope=scope)).total == 1
    with pytest.raises(NotFound):
        await store.get(CI, created["id"], scope=Scope.of("x' OR '1'='1"))


def _set_state(state: str) -> Any:
    def change(obj: Object) -> Object:
        obj["status"]["state"] = state
        return obj

    return change


def _drop_finalizer(name: str) -> Any:
    def change(obj: Object) -> Object:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != name]
        return obj

    return change
