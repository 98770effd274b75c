"""What AWX clients read before they act: the public API roots and OPTIONS metadata.

The metadata must agree with the service: every field OPTIONS calls filterable is accepted as
a list filter and every other one is refused, so a flag the AWX CLI offers always works.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from cloudkit.local.automation import AutomationHandle
from tests.contract.automation.automation_client import Api

pytestmark = pytest.mark.stack

LISTS = ("job_templates", "workflow_job_templates", "jobs", "workflow_jobs", "unified_jobs")


async def options(api: Api, path: str) -> tuple[int, str, Any]:
    async with api.session.options(api.path(path)) as response:
        return response.status, response.headers.get("Allow", ""), await response.json()


async def test_api_roots_are_public_and_list_what_exists(anonymous: Api, api: Api) -> None:
    async with anonymous.session.get(f"{anonymous.url}/") as response:
        root = await response.json()
    assert response.status == 200 and root["available_versions"] == {"v2": "/api/v2/"}
    status, version_root = await anonymous.get("")
    assert status == 200 and set(LISTS) <= set(version_root)
    for name, path in version_root.items():
        async with api.session.get(f"{api.url.removesuffix('/api')}{path}") as response:
            assert response.status == 200, name
    # Below the roots, a token is still needed, OPTIONS included.
    assert (await options(anonymous, "jobs/"))[0] == 401


async def test_list_and_detail_metadata(api: Api) -> None:
    status, allow, jobs = await options(api, "jobs/")
    assert status == 200 and allow == "GET, HEAD, OPTIONS"
    assert jobs["types"] == ["job"] and jobs["max_page_size"] == 200
    assert jobs["search_fields"] == ["name"] and "POST" not in jobs["actions"]
    fields = jobs["actions"]["GET"]
    assert fields["status"]["type"] == "choice" and fields["status"]["filterable"] is True
    assert ["canceled", "Canceled"] in fields["status"]["choices"]
    assert fields["job_template"] == {
        "type": "id",
        "hidden": False,
        "label": "Job template",
        "help_text": "The template this job was launched from.",
        "filterable": True,
    }
    assert fields["related"]["type"] == "object" and fields["extra_vars"]["filterable"] is False

    # Detail views answer for any id (awxkit asks about id 1 to learn the methods).
    status, allow, job = await options(api, "jobs/424242/")
    assert status == 200 and allow == "DELETE, GET, HEAD, OPTIONS"
    assert "result_traceback" in job["actions"]["GET"]
    status, allow, _ = await options(api, "job_templates/1/")
    assert status == 200 and allow == "GET, HEAD, OPTIONS"


async def test_launch_metadata_offers_post_to_the_write_token_only(api: Api, read_api: Api) -> None:
    for collection in ("job_templates", "workflow_job_templates"):
        status, allow, launch = await options(api, f"{collection}/1/launch/")
        assert status == 200 and allow == "GET, HEAD, OPTIONS, POST"
        assert launch["actions"]["POST"]["extra_vars"]["type"] == "json"
        assert launch["actions"]["POST"]["extra_vars"]["required"] is False
        _, _, read_only = await options(read_api, f"{collection}/1/launch/")
        assert set(read_only["actions"]) == {"GET"}


async def test_filterable_fields_are_exactly_the_accepted_filters(api: Api) -> None:
    for collection in LISTS:
        _, _, meta = await options(api, f"{collection}/")
        for name, field in meta["actions"]["GET"].items():
            status, body = await api.get(f"{collection}/", params={f"{name}__isnull": "false"})
            if field["filterable"]:
                assert status == 200, (collection, name, body)
            else:
                # 403 for the fields AWX never filters on (they may hold secrets).
                assert status in (400, 403), (collection, name, body)


async def test_search_and_filter_prefixes(api: Api) -> None:
    async def names(**params: str) -> list[str]:
        status, page = await api.get("job_templates/", params=params)
        assert status == 200, page
        return [t["name"] for t in page["results"]]

    assert await names(search="STRI") == ["strict"]
    assert await names(search="slow time") == ["slow with timeout"]
    strict = await api.template_id("strict")
    assert await names(or__name="ok", or__id=str(strict)) == ["ok", "strict"]
    assert "ok" not in await names(not__name="ok")
    assert await names(chain__name="fail") == ["fail"]


async def test_head_answers_like_get_without_a_body(automation: AutomationHandle) -> None:
    headers = {"Authorization": f"Bearer {automation.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.head(f"{automation.url}/v2/jobs/") as response,
    ):
        assert response.status == 200 and await response.read() == b""
