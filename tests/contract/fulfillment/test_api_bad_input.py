"""Bad input at the HTTP layer: each gets its answer (422, 413, 400, 404) naming the problem,
never a 500, and never a half-written record."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.fulfillment import PUBLIC, Tenant

pytestmark = pytest.mark.stack

SQLISH = "x'); DROP TABLE compute_instances; -- \" OR 1=1 /* ; \\ %_"


async def assert_nothing_stored(tenant: Tenant) -> None:
    status, page = await tenant.call("GET", PUBLIC)
    assert status == 200 and page["total"] == 0, page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spec": {"template": "small", "colour": "red"}}, "spec.colour"),
        ({"spec": {"template": "small"}, "extra": 1}, "extra"),
        ({"spec": {"template": 7}}, "spec.template"),
        (
            {"spec": {"template": "small", "boot_disk": {"size_gib": "ten"}}},
            "spec.boot_disk.size_gib",
        ),
        (
            {"spec": {"template": "small", "additional_disks": {"size_gib": 1}}},
            "spec.additional_disks",
        ),
        ({"spec": {"template": "small", "run_strategy": "Sometimes"}}, "spec.run_strategy"),
        ({"spec": {"template": "small"}, "metadata": {"labels": {"a": 1}}}, "metadata.labels.a"),
        ({"metadata": {"name": "web"}}, "spec"),
    ],
)
async def test_unknown_fields_and_wrong_types_are_422_naming_the_field(
    acme: Tenant, body: dict[str, Any], field: str
) -> None:
    status, answer = await acme.call("POST", PUBLIC, json=body)
    assert status == 422, answer
    assert field in [d["field"] for d in answer["details"]]
    assert answer["message"].startswith(answer["details"][0]["field"])
    await assert_nothing_stored(acme)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', "null", "{"])
async def test_a_body_that_is_not_an_object_is_422(acme: Tenant, body: str) -> None:
    status, answer = await acme.call(
        "POST", PUBLIC, data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 422, answer
    await assert_nothing_stored(acme)


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web.example", "a" * 64, "wé"])
async def test_a_name_that_is_not_a_dns_label_is_422(acme: Tenant, name: str) -> None:
    status, answer = await acme.call(
        "POST", PUBLIC, json={"metadata": {"name": name}, "spec": {"template": "small"}}
    )
    assert status == 422, answer
    assert answer["details"][0]["field"] == "metadata.name"
    await assert_nothing_stored(acme)


async def test_a_body_over_one_mebibyte_is_413(acme: Tenant) -> None:
    big = {"spec": {"template": "small", "user_data": "x" * (1024 * 1024)}}
    status, answer = await acme.call("POST", PUBLIC, json=big)
    assert status == 413, answer
    await assert_nothing_stored(acme)


async def test_a_body_over_one_mebibyte_without_a_length_is_413(acme: Tenant) -> None:
    async def chunks() -> Any:
        yield b'{"spec": {"template": "small", "user_data": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}}'

    status, answer = await acme.call(
        "POST", PUBLIC, data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert status == 413, answer
    await assert_nothing_stored(acme)


@pytest.mark.parametrize(
    ("flt", "problem"),
    [
        ("this.metadata.name ==", "syntax error at column"),
        ("this.metadata.name.startsWith(", "syntax error"),
        (
            "["
            + ",".join(["1"] * 60)
            + "].all(a, ["
            + ",".join(["1"] * 60)
            + "].all(b, ["
            + ",".join(["1"] * 60)
            + "].all(c, a + b + c > 0)))",
            "cost limit",
        ),
        ("x" * 5000, "longer than"),
    ],
)
async def test_a_filter_that_does_not_parse_or_runs_too_long_is_400_naming_the_problem(
    acme: Tenant, flt: str, problem: str
) -> None:
    await acme.create("web")
    status, answer = await acme.call("GET", PUBLIC, params={"filter": flt})
    assert status == 400, answer
    assert answer["message"].startswith("filter:") and problem in answer["message"]


@pytest.mark.parametrize(
    "order", ["metadata.name; DROP TABLE x", "spec.nonexistent_field", "a b c"]
)
async def test_an_order_the_server_cannot_use_is_400(acme: Tenant, order: str) -> None:
    await acme.create("web")
    status, answer = await acme.call("GET", PUBLIC, params={"order": order})
    assert status == 400, answer


async def test_sql_metacharacters_in_every_string_field_are_stored_and_returned_literally(
    acme: Tenant,
) -> None:
    spec = {
        "template": SQLISH,
        "template_parameters": {SQLISH: SQLISH},
        "image": {"source_type": SQLISH, "source_ref": SQLISH},
        "ssh_public_key": SQLISH,
        "user_data": SQLISH,
        "network_attachments": [{"subnet": SQLISH, "security_groups": [SQLISH]}],
        "catalog_item": SQLISH,
        "instance_type": SQLISH,
    }
    metadata = {"name": "web", "labels": {SQLISH: SQLISH}, "annotations": {SQLISH: SQLISH}}
    status, created = await acme.call("POST", PUBLIC, json={"metadata": metadata, "spec": spec})
    assert status == 200, created
    assert {name: created["spec"][name] for name in spec} == spec
    assert created["metadata"]["labels"] == metadata["labels"]
    quoted = SQLISH.replace("\\", "\\\\").replace('"', '\\"')
    status, page = await acme.call(
        "GET", PUBLIC, params={"filter": f'this.spec.user_data == "{quoted}"', "order": "id"}
    )
    assert status == 200, page
    assert [i["id"] for i in page["items"]] == [created["id"]]
    assert {name: page["items"][0]["spec"][name] for name in spec} == spec
    status, fetched = await acme.call("GET", f"{PUBLIC}/{SQLISH}")
    assert status == 404, fetched


@pytest.mark.parametrize(
    ("param", "value"), [("limit", "-1"), ("offset", "x"), ("limit", "100000")]
)
async def test_out_of_range_paging_is_422_naming_the_parameter(
    acme: Tenant, param: str, value: str
) -> None:
    status, answer = await acme.call("GET", PUBLIC, params={param: value})
    assert status == 422, answer
    assert answer["details"][0]["field"] == param
