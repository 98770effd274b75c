"""Two tenants on one service: another tenant's record answers exactly like a missing one, a
list never shows it, the private API is closed to tenants, and a bad token learns nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.fulfillment import (
    EVENTS,
    HUBS,
    PRIVATE,
    PRIVATE_EVENTS,
    PUBLIC,
    FulfillmentService,
    Issuer,
    Tenant,
)

pytestmark = pytest.mark.stack

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_another_tenants_id_answers_exactly_like_a_missing_one(
    acme: Tenant, globex: Tenant
) -> None:
    theirs = await globex.create("secret-web")
    for method, body in (
        ("GET", None),
        ("PATCH", {"spec": {"template": "small"}}),
        ("DELETE", None),
    ):
        crossed = await acme.call(method, f"{PUBLIC}/{theirs['id']}", json=body)
        missing = await acme.call(method, f"{PUBLIC}/{MISSING}", json=body)
        assert crossed[0] == 404, crossed
        assert crossed == missing
    status, still = await globex.call("GET", f"{PUBLIC}/{theirs['id']}")
    assert status == 200 and still == theirs  # untouched by acme's attempts


async def test_a_list_shows_only_the_callers_records_even_with_a_filter_naming_others(
    acme: Tenant, globex: Tenant
) -> None:
    await acme.create("a-1")
    await globex.create("g-1")
    naming_them = f'this.metadata.tenant == "{globex.name}"'
    for flt, total in ((None, 1), ("true", 1), (naming_them, 0)):
        status, page = await acme.call("GET", PUBLIC, params={"filter": flt} if flt else {})
        assert status == 200, page
        assert {i["metadata"]["tenant"] for i in page["items"]} <= {acme.name}
        assert page["total"] == total


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", PRIVATE),
        ("POST", PRIVATE),
        ("GET", f"{PRIVATE}/{MISSING}"),
        ("POST", f"{PRIVATE}/{MISSING}/signal"),
        ("GET", HUBS),
        ("POST", HUBS),
        ("GET", PRIVATE_EVENTS),
    ],
)
async def test_a_tenant_on_the_private_api_gets_403(acme: Tenant, method: str, path: str) -> None:
    status, answer = await acme.call(method, path, json={} if method == "POST" else None)
    assert status == 403, answer
    assert answer["code"] == 403


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic YWNtZTphY21l", "Bearer eyJhbGciOiJub25lIn0.e30."],
)
async def test_a_bad_token_is_a_bare_401(
    service: FulfillmentService, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with service.session(None) as http:
        for path in (PUBLIC, EVENTS, PRIVATE):
            async with http.get(path, headers=headers) as answer:
                assert answer.status == 401
                assert answer.headers["WWW-Authenticate"] == "Bearer"
                assert await answer.json() == {
                    "code": 401,
                    "message": "unauthenticated",
                    "details": [],
                }


async def test_a_token_of_another_issuer_is_refused(
    service: FulfillmentService, tmp_path: Path
) -> None:
    other = Issuer(tmp_path / "other-issuer")
    await other.start()
    try:
        token = other.token("acme")
    finally:
        other.stop()
    async with service.session(token) as http, http.get(PUBLIC) as answer:
        assert answer.status == 401
        assert token not in await answer.text()
    assert token not in service.log_path.read_text()
