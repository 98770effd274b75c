"""The HTTP contract: auth and error bodies, slashes, prefixes, templates, launch rules, lists."""

from __future__ import annotations

import aiohttp
import pytest

from cloudkit.local.automation import AutomationHandle
from tests.contract.automation.automation_client import Api

pytestmark = pytest.mark.stack

NOT_AUTHENTICATED = {
    "detail": "Authentication credentials were not provided. To establish a login session, "
    "visit /api/login/."
}


async def test_ping_needs_no_auth_and_me_does(anonymous: Api, api: Api) -> None:
    status, ping = await anonymous.get("ping/")
    assert status == 200 and ping["version"] and ping["instances"] and ping["instance_groups"]
    assert await anonymous.get("me/") == (401, NOT_AUTHENTICATED)
    status, me = await api.get("me/")
    assert status == 200 and me["count"] == 1 and me["results"][0]["id"] == 1


async def test_wrong_token_gets_401_with_challenge(automation: AutomationHandle) -> None:
    headers = {"Authorization": "Bearer not-the-token"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{automation.url}/v2/jobs/") as response,
    ):
        assert response.status == 401
        assert await response.json() == NOT_AUTHENTICATED
        assert response.headers["WWW-Authenticate"] == (
            "Bearer realm=api authorization_url=/api/o/authorize/"
        )


async def test_read_token_reads_but_cannot_launch(read_api: Api) -> None:
    template = await read_api.template_id("ok")
    status, body = await read_api.post(f"job_templates/{template}/launch/", {})
    assert (status, body) == (403, {"detail": "You do not have permission to perform this action."})
    assert (await read_api.get("jobs/"))[0] == 200


async def test_token_is_stored_0600_and_reused(automation: AutomationHandle) -> None:
    path = automation.state_dir / "automation-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == automation.token
    assert (automation.state_dir / "automation-token-read").read_text().strip() == (
        automation.read_token
    )


async def test_missing_slash_redirects_301(automation: AutomationHandle) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{automation.url}/v2/ping?x=1", allow_redirects=False) as response,
    ):
        assert response.status == 301
        assert response.headers["Location"] == "/api/v2/ping/?x=1"


async def test_roots_and_both_prefixes(automation: AutomationHandle, api: Api) -> None:
    controller = Api(api.session, automation.controller_url)
    for client, prefix in ((api, "/api/v2/"), (controller, "/api/controller/v2/")):
        async with api.session.get(client.url + "/") as response:
            assert (await response.json())["current_version"] == prefix
        launched = await client.launch("quick")
        assert launched["url"] == f"{prefix}jobs/{launched['job']}/"
        job = await client.wait_status(launched["job"])
        assert job["status"] == "successful"
        assert job["related"]["stdout"].startswith(prefix)


async def test_template_lookup(api: Api) -> None:
    status, page = await api.get("job_templates/", params={"name": "strict"})
    assert status == 200 and page["count"] == 1
    template = page["results"][0]
    assert template["type"] == "job_template" and template["ask_variables_on_launch"] is False
    assert (await api.get("job_templates/", params={"name": "stri"}))[1]["count"] == 0
    status, page = await api.get("workflow_job_templates/", params={"name": "strict pipeline"})
    assert status == 200 and page["results"][0]["type"] == "workflow_job_template"
    assert (await api.get(f"job_templates/{template['id']}/"))[1]["name"] == "strict"
    assert (await api.get("job_templates/strict/"))[1]["id"] == template["id"]
    assert await api.get("job_templates/9999/") == (404, {"detail": "Not found."})
    assert (await api.get("workflow_job_templates/pipeline/"))[0] == 404
    status, preflight = await api.get(f"job_templates/{template['id']}/launch/")
    assert status == 200 and preflight["can_start_without_user_input"] is True


async def test_unprompted_vars_are_ignored_fields(api: Api) -> None:
    launched = await api.launch("strict", {"extra_vars": {"who": "caller", "extra": 1}})
    assert launched["ignored_fields"] == {"extra_vars": {"who": "caller", "extra": 1}}
    job = await api.wait_status(launched["job"])
    assert job["extra_vars"] == '{"who": "template"}'
    _, text = await api.get(f"jobs/{job['id']}/stdout/", params={"format": "txt"})
    assert "hello template" in text


@pytest.mark.parametrize(
    "extra_vars", [{"who": "dict"}, '{"who": "json"}', "who: yaml\n", "---\nwho: yaml2"]
)
async def test_extra_vars_forms(api: Api, extra_vars: object) -> None:
    launched = await api.launch("ok", {"extra_vars": extra_vars})
    assert launched["extra_vars"].startswith('{"who": ')
    await api.post(f"jobs/{launched['job']}/cancel/")


@pytest.mark.parametrize("extra_vars", ["{not: [valid", "[1, 2]", "just a string", 7])
async def test_bad_extra_vars_400_field_map(api: Api, extra_vars: object) -> None:
    template = await api.template_id("ok")
    status, body = await api.post(f"job_templates/{template}/launch/", {"extra_vars": extra_vars})
    assert status == 400 and list(body) == ["extra_vars"] and isinstance(body["extra_vars"], list)
    assert (await api.get("jobs/"))[1]["count"] == 0


async def test_job_list_filters_and_pages(api: Api) -> None:
    template = await api.template_id("quick")
    ids = [(await api.launch("quick"))["job"] for _ in range(3)]
    for job_id in ids:
        await api.wait_status(job_id)
    status, page = await api.get("jobs/", params={"id__in": f"{ids[0]},{ids[2]}"})
    assert [j["id"] for j in page["results"]] == [ids[0], ids[2]]
    assert "result_traceback" not in page["results"][0]
    _, page = await api.get("jobs/", params={"order_by": "-id", "status": "successful"})
    assert [j["id"] for j in page["results"]] == ids[::-1]
    _, page = await api.get("jobs/", params={"status__in": "pending,running"})
    assert page["count"] == 0
    first = (await api.get(f"jobs/{ids[0]}/"))[1]
    _, page = await api.get(
        "jobs/", params={"job_template": str(template), "created__gte": first["created"]}
    )
    assert page["count"] == 3
    _, page = await api.get("jobs/", params={"id": str(ids[1])})
    assert page["count"] == 1
    _, page = await api.get("jobs/", params={"page_size": "2"})
    assert len(page["results"]) == 2 and page["next"] and page["previous"] is None
    _, second = await api.get("jobs/", params={"page_size": "2", "page": "2"})
    assert len(second["results"]) == 1 and second["next"] is None and second["previous"]
    assert (await api.get("jobs/", params={"page": "3", "page_size": "2"}))[0] == 404
    _, capped = await api.get("jobs/", params={"page_size": "100000"})
    assert capped["count"] == 3
    status, body = await api.get("jobs/", params={"extra_vars__icontains": "x"})
    assert (status, body) == (403, {"detail": "Filtering on extra_vars is not allowed."})
    assert (await api.get("jobs/", params={"bogus": "1"}))[0] == 400
    _, unified = await api.get("unified_jobs/", params={"id__in": ",".join(map(str, ids))})
    assert unified["count"] == 3


async def test_unknown_route_and_method(api: Api) -> None:
    assert await api.get("nothing/") == (404, {"detail": "Not found."})
    async with api.session.put(api.path("jobs/")) as response:
        assert response.status == 405
        assert await response.json() == {"detail": 'Method "PUT" not allowed.'}
