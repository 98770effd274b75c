"""Request handlers: parse, look up, dispatch to the executor, render (no SQL, no processes)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cloudkit.local.automation import render
from cloudkit.local.automation.executor import Executor
from cloudkit.local.automation.listing import (
    Filter,
    ListQuery,
    ListQueryError,
    page_links,
    page_out_of_range,
    parse_list_query,
    unknown_filters,
)
from cloudkit.local.automation.metadata import ENDPOINTS, Endpoint
from cloudkit.local.automation.planning import (
    JOB_TEMPLATE,
    WORKFLOW_TEMPLATE,
    LaunchRejected,
    TemplateSpec,
    plan_launch,
)
from cloudkit.local.automation.store import Store, Template

# The resources `GET /api/v2/` lists: exactly the collections this service serves.
TOP_LEVEL = (
    "ping",
    "me",
    "job_templates",
    "workflow_job_templates",
    "jobs",
    "workflow_jobs",
    "unified_jobs",
)
# AWX's relational filter the CLI's `--monitor` uses to list a workflow job's spawned jobs.
WORKFLOW_NODE_FILTER = "unified_job_node__workflow_job"
EVENT_FIELDS = {
    "counter": "counter",
    "event": "event",
    "start_line": "start_line",
    "id": "counter",
    "host_name": "host_name",
    "uuid": "uuid",
    "failed": "failed",
}
# Per collection: the job types it serves.
JOB_COLLECTIONS = {
    "jobs": ("job",),
    "workflow_jobs": ("workflow_job",),
    "unified_jobs": ("job", "workflow_job"),
}


def _detail(status: int, text: str) -> web.Response:
    return web.json_response({"detail": text}, status=status)


def _not_found() -> web.Response:
    return _detail(404, "Not found.")


_MAX_ID = 2**63 - 1  # the largest SQLite integer, as AWX's bigint keys


def row_id(text: str) -> int | None:
    """An id from a URL, or None when no row can have it (so the answer is a 404, as AWX's
    lookup of a [0-9]+ id finds nothing): ASCII digits only, and below 2^63."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(_MAX_ID)):
        return None
    number = int(text)
    return number if number <= _MAX_ID else None


def _prefix(request: web.Request) -> str:
    return "/api/controller/v2" if request.path.startswith("/api/controller/") else "/api/v2"


def _collection(request: web.Request) -> str:
    return request.path[len(_prefix(request)) + 1 :].split("/", 1)[0]


class Views:
    def __init__(self, store: Store, executor: Executor, *, workers: int) -> None:
        self._store = store
        self._executor = executor
        self._workers = workers

    # -- service -------------------------------------------------------------------------------

    def options(
        self, endpoint: Endpoint, can_write: Callable[[web.Request], bool]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The OPTIONS handler of one path: its metadata, and an `Allow` header read from the
        routes the path has (so it lists exactly the methods that answer)."""

        async def handler(request: web.Request) -> web.Response:
            resource = request.match_info.route.resource
            methods = sorted({route.method for route in resource or ()})
            body = endpoint.options_body(can_write=can_write(request))
            return web.json_response(body, headers={"Allow": ", ".join(methods)})

        return handler

    async def root(self, request: web.Request) -> web.Response:
        version = f"{request.path}v2/"
        return web.json_response(
            {
                "description": "cloudkit local automation service (AWX-compatible subset)",
                "current_version": version,
                "available_versions": {"v2": version},
                "custom_logo": "",
                "custom_login_info": "",
                "login_redirect_override": "",
            }
        )

    async def version_root(self, request: web.Request) -> web.Response:
        p = _prefix(request)
        return web.json_response({name: f"{p}/{name}/" for name in TOP_LEVEL})

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response(render.ping_body(self._workers))

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response(
            render.page_body(1, [render.USER], {"next": None, "previous": None})
        )

    # -- templates -----------------------------------------------------------------------------

    def _kind(self, request: web.Request) -> str:
        return JOB_TEMPLATE if _collection(request) == "job_templates" else WORKFLOW_TEMPLATE

    def _template(self, request: web.Request) -> Template | None:
        kind, key = self._kind(request), request.match_info["template"]
        if key.isascii() and key.isdigit():
            template_id = row_id(key)
            return None if template_id is None else self._store.template(kind, template_id)
        # Legacy bare-name URLs work only under job_templates (reference §1).
        return self._store.template_by_name(kind, key) if kind == JOB_TEMPLATE else None

    async def list_templates(self, request: web.Request) -> web.Response:
        def fetch(query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
            unknown_filters(query)
            count, rows = self._store.list_templates(self._kind(request), query)
            return count, [render.template_body(t, _prefix(request)) for t in rows]

        return self._page(request, ENDPOINTS[_collection(request)], fetch)

    async def get_template(self, request: web.Request) -> web.Response:
        template = self._template(request)
        if template is None:
            return _not_found()
        return web.json_response(render.template_body(template, _prefix(request)))

    async def launch_preflight(self, request: web.Request) -> web.Response:
        template = self._template(request)
        if template is None:
            return _not_found()
        return web.json_response(render.launch_preflight(template))

    async def launch(self, request: web.Request) -> web.Response:
        template = self._template(request)
        if template is None:
            return _not_found()
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            plan = plan_launch(TemplateSpec.from_json(template.spec), body)
        except LaunchRejected as rejected:
            return web.json_response(rejected.body, status=400)
        job = self._executor.launch(template, plan.extra_vars)
        rendered = render.job_body(job, _prefix(request), detail=True)
        key = "job" if job["type"] == "job" else "workflow_job"
        response = {key: job["id"], "ignored_fields": plan.ignored_fields, **rendered}
        return web.json_response(response, status=201, headers={"Location": rendered["url"]})

    # -- jobs ----------------------------------------------------------------------------------

    def _job(self, request: web.Request) -> dict[str, Any] | None:
        job_type = "job" if _collection(request) == "jobs" else "workflow_job"
        job_id = row_id(request.match_info["job"])
        return None if job_id is None else self._store.job(job_id, job_type)

    async def list_jobs(self, request: web.Request) -> web.Response:
        collection = _collection(request)

        def fetch(query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
            query = self._spawned_by(query)
            unknown_filters(query)
            count, rows = self._store.list_jobs(query, JOB_COLLECTIONS[collection])
            return count, [render.job_body(j, _prefix(request), detail=False) for j in rows]

        return self._page(request, ENDPOINTS[collection], fetch)

    def _spawned_by(self, query: ListQuery) -> ListQuery:
        """Answer AWX's `unified_job_node__workflow_job=<id>` (the jobs a workflow job spawned)
        as an id filter on the workflow's children; the store has no node table."""
        raw = query.extra.get(WORKFLOW_NODE_FILTER)
        if raw is None:
            return query
        workflow_id = row_id(raw)
        children = [] if workflow_id is None else self._store.workflow_children(workflow_id)
        extra = {k: v for k, v in query.extra.items() if k != WORKFLOW_NODE_FILTER}
        spawned = Filter("id", "in", [child["id"] for child in children])
        return dataclasses.replace(query, filters=(*query.filters, spawned), extra=extra)

    async def get_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _not_found()
        return web.json_response(render.job_body(job, _prefix(request), detail=True))

    async def delete_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _not_found()
        if render.is_active(job):
            return _detail(403, "Cannot delete running job resource.")
        for child in self._store.workflow_children(job["id"]):
            self._store.update_job(child["id"], workflow_job_id=None)
        self._store.delete_job(job["id"])
        return web.Response(status=204)

    async def can_cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _not_found()
        return web.json_response({"can_cancel": render.is_active(job)})

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _not_found()
        if not await self._executor.cancel(job["id"]):
            return _detail(405, 'Method "POST" not allowed.')
        return web.Response(status=202)

    async def stdout(self, request: web.Request) -> web.StreamResponse:
        job = self._job(request)
        if job is None:
            return _not_found()
        text = self._store.stdout(job["id"])
        fmt = request.query.get("format", "json")
        if fmt == "ansi":
            return web.Response(text=text, content_type="text/plain")
        if fmt in ("txt_download", "ansi_download"):
            # The AWX CLI's `jobs stdout` asks for ansi_download when colour is on.
            raw = fmt == "ansi_download"
            name = f"job_{job['id']}{'.ansi' if raw else ''}.txt"
            return web.Response(
                text=text if raw else render.strip_ansi(text),
                content_type="text/plain",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        plain = render.strip_ansi(text)
        if fmt == "txt":
            size = len(plain.encode())
            if size > render.STDOUT_TXT_LIMIT:
                plain = render.stdout_too_large(size)
            return web.Response(text=plain, content_type="text/plain")
        if fmt == "json":
            lines = plain.count("\n")
            return web.json_response(
                {
                    "range": {"start": 0, "end": lines, "absolute_end": lines},
                    "content": plain,
                }
            )
        return _detail(404, "Not found.")

    async def job_events(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _not_found()
        truncate = request.query.get("no_truncate", "") not in ("1", "true", "True")

        def fetch(query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
            unknown_filters(query)
            count, rows = self._store.list_events(job["id"], query)
            return count, [render.event_body(e, _prefix(request), truncate=truncate) for e in rows]

        return self._page(request, EVENT_FIELDS, fetch, default_order="start_line")

    async def workflow_nodes(self, request: web.Request) -> web.Response:
        workflow = self._job(request)
        if workflow is None:
            return _not_found()
        prefix = _prefix(request)
        children = self._store.workflow_children(workflow["id"])
        nodes = [
            {
                "id": index + 1,
                "type": "workflow_job_node",
                "job": child["id"],
                "workflow_job": workflow["id"],
                "summary_fields": {
                    "job": {
                        "id": child["id"],
                        "name": child["name"],
                        "status": child["status"],
                        "failed": child["status"] in render.FAILED_STATUSES,
                        "type": "job",
                    }
                },
                "related": {"job": f"{prefix}/jobs/{child['id']}/"},
            }
            for index, child in enumerate(children)
        ]
        return web.json_response(
            render.page_body(len(nodes), nodes, {"next": None, "previous": None})
        )

    # -- shared --------------------------------------------------------------------------------

    def _page(
        self,
        request: web.Request,
        fields: Endpoint | dict[str, str],
        fetch: Callable[[ListQuery], tuple[int, list[dict[str, Any]]]],
        default_order: str = "id",
    ) -> web.Response:
        params = dict(request.query)
        columns = fields.filters() if isinstance(fields, Endpoint) else fields
        search = fields.search_fields if isinstance(fields, Endpoint) else ()
        try:
            query = parse_list_query(
                params, fields=columns, default_order=default_order, search_fields=search
            )
            count, results = fetch(query)
        except ListQueryError as error:
            return _detail(error.status, error.detail)
        if page_out_of_range(query, count):
            return _detail(404, "Invalid page.")
        links = page_links(request.path, params, query, count)
        return web.json_response(render.page_body(count, results, links))


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    raw = await request.text()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return _detail(400, f"JSON parse error - {exc}")
    if not isinstance(body, dict):
        return web.json_response({"__all__": ["Expected a JSON object."]}, status=400)
    return body
