"""Ids in URLs as AWX takes them: `[0-9]+` then a lookup, so anything else is a 404.

Out-of-range (2^63 and past, which SQLite cannot hold), negative, non-ASCII digits and words
are "Not found." on every route that takes an id, never a 500 and never another object.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudkit.local.automation import AutomationHandle
from tests.contract.automation.automation_client import Api

pytestmark = pytest.mark.stack

BAD_IDS = (
    str(2**63),
    str(2**63 + 1),
    "9" * 40,
    "1" * 5000,  # past Python's int-parsing limit for strings
    "-1",
    "+1",
    "0x1",
    "1.0",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads 1, AWX's [0-9]+ does not match it
    "\u00b9",  # SUPERSCRIPT ONE: isdigit() but not int()
    "abc",
)


def _id_routes(automation: AutomationHandle) -> list[tuple[str, str]]:
    """(method, path template) of every route that takes an id: what the service really
    serves, so a route added later is covered without touching this test."""
    app: Any = automation._runner.app
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if "{" in path and route.method in ("GET", "POST", "DELETE"):
            found.add((route.method, path))
    return sorted(found)


def _fill(path: str, value: str) -> str:
    return path.replace("{job}", value).replace("{template}", value)


async def test_bad_ids_are_404_on_every_route(automation: AutomationHandle, api: Api) -> None:
    routes = _id_routes(automation)
    collections = {path.split("/")[3] for _, path in routes}
    assert {"job_templates", "workflow_job_templates", "jobs", "workflow_jobs"} <= collections
    assert any(path.endswith("/launch/") for _, path in routes)
    assert any(path.endswith("/cancel/") for _, path in routes)
    assert any(path.endswith("/stdout/") for _, path in routes)
    # Template 1 and a job exist, so a lookup that read Arabic-Indic digits as their ASCII
    # twins would answer 200.
    assert (await api.get("job_templates/1/"))[0] == 200
    job = (await api.launch("quick"))["id"]
    await api.wait_status(job)
    assert (await api.get(f"jobs/{job}/"))[0] == 200
    twin = "".join(chr(0x0660 + int(digit)) for digit in str(job))
    for method, path in routes:
        for bad in (*BAD_IDS, twin):
            url = api.url.removesuffix("/api") + _fill(path, bad)
            async with api.session.request(method, url, json={}) as response:
                text = await response.text()
                assert response.status == 404, (method, path, bad, response.status, text)
                assert json.loads(text) == {"detail": "Not found."}, (method, path, bad)


async def test_largest_id_is_an_ordinary_miss(api: Api) -> None:
    largest = str(2**63 - 1)
    for path in (f"jobs/{largest}/", f"job_templates/{largest}/", f"workflow_jobs/{largest}/"):
        assert (await api.get(path))[0] == 404


async def test_out_of_range_ids_in_list_filters_match_nothing(api: Api) -> None:
    job = (await api.launch("quick"))["id"]
    await api.wait_status(job)
    huge = str(2**63)
    for query, count in (
        ({"id": huge}, 0),
        ({"id__gt": huge}, 0),
        ({"id__lt": huge}, 1),
        ({"id__in": f"{job},{huge}"}, 1),
        ({"job_template": "9" * 40}, 0),
    ):
        status, body = await api.get("jobs/", params=query)
        assert status == 200 and body["count"] == count, (query, body)
    status, body = await api.get("jobs/", params={"page": huge})
    assert status == 404 and body == {"detail": "Invalid page."}
