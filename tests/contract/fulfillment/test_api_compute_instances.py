"""The public compute-instance API over HTTPS, as a tenant's client sees it: create, get, list,
update with and without a mask, optimistic locking, soft delete."""

from __future__ import annotations

import pytest

from tests.harness.fulfillment import PUBLIC, Tenant

pytestmark = pytest.mark.stack


async def test_create_assigns_the_id_and_takes_tenant_and_creator_from_the_token(
    acme: Tenant,
) -> None:
    status, created = await acme.call(
        "POST",
        PUBLIC,
        json={
            "id": "chosen-by-me",
            "metadata": {
                "name": "web-1",
                "tenant": "someone-else",
                "creator": "mallory",
                "version": 99,
                "labels": {"tier": "front"},
            },
            "spec": {"template": "small", "template_parameters": {"cpu": 2}},
            "status": {"state": "COMPUTE_INSTANCE_STATE_RUNNING"},
        },
    )
    assert status == 200, created
    assert created["id"] and created["id"] != "chosen-by-me"
    metadata = created["metadata"]
    assert (metadata["tenant"], metadata["creator"]) == (acme.name, acme.user)
    assert metadata["version"] == 1 and metadata["creation_timestamp"]
    assert metadata["labels"] == {"tier": "front"}
    assert "finalizers" not in metadata
    # The status belongs to the system: what the tenant sent is not kept.
    assert created["status"]["state"] == "COMPUTE_INSTANCE_STATE_UNSPECIFIED"
    status, fetched = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert status == 200 and fetched == created


async def test_list_pages_filters_and_orders(acme: Tenant) -> None:
    for name in ("web-b", "web-a", "db-1"):
        await acme.create(name)
    status, page = await acme.call(
        "GET",
        PUBLIC,
        params={"filter": 'this.metadata.name.startsWith("web")', "order": "metadata.name"},
    )
    assert status == 200, page
    assert (page["size"], page["total"]) == (2, 2)
    assert [i["metadata"]["name"] for i in page["items"]] == ["web-a", "web-b"]
    status, page = await acme.call(
        "GET", PUBLIC, params={"order": "metadata.name desc", "offset": 1, "limit": 1}
    )
    assert status == 200, page
    assert (page["size"], page["total"]) == (1, 3)
    assert page["items"][0]["metadata"]["name"] == "web-a"


async def test_patch_with_a_mask_changes_only_the_named_fields(acme: Tenant) -> None:
    created = await acme.create("web", run_strategy="Always", user_data="#cloud-config")
    status, updated = await acme.call(
        "PATCH",
        f"{PUBLIC}/{created['id']}",
        params={"update_mask": "spec.run_strategy"},
        json={"spec": {"run_strategy": "Halted", "user_data": "not named: ignored"}},
    )
    assert status == 200, updated
    assert updated["spec"]["run_strategy"] == "Halted"
    assert updated["spec"]["user_data"] == "#cloud-config"
    assert updated["metadata"]["version"] == created["metadata"]["version"] + 1


async def test_patch_without_a_mask_replaces_the_whole_spec(acme: Tenant) -> None:
    created = await acme.create("web", run_strategy="Always", user_data="#cloud-config")
    status, updated = await acme.call(
        "PATCH", f"{PUBLIC}/{created['id']}", json={"spec": {"template": "small"}}
    )
    assert status == 200, updated
    assert "run_strategy" not in updated["spec"] and "user_data" not in updated["spec"]
    assert updated["spec"]["template"] == "small"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("template", "large"),
        ("template_parameters", {"cpu": 8}),
        ("image", {"source_type": "registry", "source_ref": "quay.io/other"}),
        ("boot_disk", {"size_gib": 50}),
        ("additional_disks", [{"size_gib": 5}]),
    ],
)
async def test_an_immutable_field_is_refused_on_update_naming_it(
    acme: Tenant, field: str, value: object
) -> None:
    created = await acme.create("web")
    status, answer = await acme.call(
        "PATCH",
        f"{PUBLIC}/{created['id']}",
        params={"update_mask": f"spec.{field}"},
        json={"spec": {field: value}},
    )
    assert status == 422, answer
    assert answer["details"][0]["field"] == f"spec.{field}"
    assert "immutable" in answer["message"]
    _, after = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert after == created  # nothing written


async def test_lock_refuses_a_stale_version_with_409(acme: Tenant) -> None:
    created = await acme.create("web")
    path = f"{PUBLIC}/{created['id']}"
    mask = {"update_mask": "metadata.labels", "lock": "true"}
    status, first = await acme.call(
        "PATCH", path, params=mask, json={"metadata": {"version": 1, "labels": {"a": "1"}}}
    )
    assert status == 200 and first["metadata"]["version"] == 2, first
    status, stale = await acme.call(
        "PATCH", path, params=mask, json={"metadata": {"version": 1, "labels": {"a": "2"}}}
    )
    assert status == 409, stale
    assert "metadata.version" in stale["message"]
    _, after = await acme.call("GET", path)
    assert after["metadata"]["labels"] == {"a": "1"}


async def test_a_tenant_cannot_write_status_or_finalizers(acme: Tenant) -> None:
    created = await acme.create("web")
    for path, body in (
        ("status.state", {"status": {"state": "COMPUTE_INSTANCE_STATE_RUNNING"}}),
        ("metadata.tenant", {"metadata": {"tenant": "someone-else"}}),
    ):
        status, answer = await acme.call(
            "PATCH", f"{PUBLIC}/{created['id']}", params={"update_mask": path}, json=body
        )
        assert status == 422, answer
        assert answer["details"][0]["field"] == path


async def test_delete_without_finalizers_removes_the_record(acme: Tenant) -> None:
    created = await acme.create("web")
    status, deleted = await acme.call("DELETE", f"{PUBLIC}/{created['id']}")
    assert status == 200, deleted
    assert deleted["metadata"]["deletion_timestamp"]
    status, gone = await acme.call("GET", f"{PUBLIC}/{created['id']}")
    assert status == 404, gone
    _, page = await acme.call("GET", PUBLIC)
    assert page["total"] == 0
