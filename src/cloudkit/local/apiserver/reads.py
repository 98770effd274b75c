"""Read handlers: GET of one object, LIST with selectors and paging, WATCH, Table output."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cloudkit.local.apiserver import selectors, table, watch
from cloudkit.local.apiserver.cluster import Cluster
from cloudkit.local.apiserver.errors import ApiError, resource_version_too_large
from cloudkit.local.apiserver.resources import ResourceInfo
from cloudkit.local.apiserver.wire import ServerConfig, Target, flag, json_response

# Real servers close watches after 30-60 minutes; clients reconnect from their last RV.
DEFAULT_WATCH_TIMEOUT_S = 1800.0


class ReadHandlers:
    """Mixed into ApiServerApp."""

    cluster: Cluster
    config: ServerConfig
    line_cache: watch.LineCache

    @staticmethod
    def _wants_table(request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _render_one(self, request: web.Request, info: ResourceInfo, obj: Any) -> web.Response:
        if self._wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            rv = obj["metadata"].get("resourceVersion", "")
            return json_response(table.to_table(info, [obj], include, {"resourceVersion": rv}))
        return self._object_response(info, obj)

    def _object_response(
        self, info: ResourceInfo, obj: Any, status: int = 200, warnings: list[str] | None = None
    ) -> web.Response:
        """One object as served: the store's own text of it when `obj` is the stored object
        (a write's reply, a GET), encoded afresh otherwise (another version, a dry run)."""
        text = self.cluster.store.encoded(info.rkey, obj) if isinstance(obj, dict) else None
        return json_response(obj, status, warnings, text=text)

    def _matcher(self, request: web.Request, info: ResourceInfo) -> Callable[[Any], bool]:
        labels = selectors.parse_label_selector(request.query.get("labelSelector"))

        def supported(path: str) -> bool:
            if path == "metadata.name" or (path == "metadata.namespace" and info.namespaced):
                return True
            return path in info.selectable_fields or path in info.extra_field_labels

        fields = selectors.parse_field_selector(request.query.get("fieldSelector"), supported)

        def match(obj: Any) -> bool:
            return (labels is None or labels(obj)) and (fields is None or fields(obj))

        return match

    def _list(self, request: web.Request, target: Target) -> web.Response:
        info = target.info
        store = self.cluster.store
        match = self._matcher(request, info)
        rv_param = request.query.get("resourceVersion")
        rv_match = request.query.get("resourceVersionMatch")
        if rv_match == "Exact" and rv_param and rv_param != str(store.rv):
            raise ApiError(410, f"too old resource version: {rv_param} ({store.rv})")
        requested = watch.parse_rv(rv_param)
        if requested is not None and requested > store.rv:
            # A future RV (e.g. after a state reset): real servers time out like this, and
            # client-go's reflector then re-lists without one.
            raise resource_version_too_large(requested, store.rv)
        name = selectors.name_from_field_selector(request.query.get("fieldSelector"))
        if name is not None:
            found = (
                store.get(info.rkey, target.namespace or "", name)
                if (target.namespace is not None or not info.namespaced)
                else None
            )
            candidates = [found] if found is not None else []
            if found is None and target.namespace is None and info.namespaced:
                candidates = store.list_objects(info.rkey)
        else:
            candidates = store.list_objects(info.rkey, target.namespace)
        items = [obj for obj in candidates if match(obj)]
        list_meta: dict[str, Any] = {"resourceVersion": str(store.rv)}
        items, token = self._page(request, items, store.rv)
        if token:
            list_meta["continue"] = token
            list_meta["remainingItemCount"] = 0
        items = [self.cluster.present(info, obj) for obj in items]
        if self._wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return json_response(table.to_table(info, items, include, list_meta))
        envelope = {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": list_meta}
        # The items are the stored objects (or renderings of another version): their texts
        # are spliced in, as one json.dumps of the whole list would have written them.
        texts = [
            self.cluster.store.encoded(info.rkey, obj) or json.dumps(obj, separators=(",", ":"))
            for obj in items
        ]
        head = json.dumps(envelope, separators=(",", ":"))[:-1]
        return json_response(None, text=head + ',"items":[' + ",".join(texts) + "]}")

    def _page(self, request: web.Request, items: list[Any], rv: int) -> tuple[list[Any], str]:
        start = 0
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start_key = (state["ns"], state["name"])
                token_rv = int(state["rv"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "invalid continue token") from None
            if token_rv < self.cluster.store.compacted_rv:
                raise ApiError(
                    410,
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                )
            start = next(
                (
                    i
                    for i, o in enumerate(items)
                    if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start_key
                ),
                len(items),
            )
        try:
            limit = int(request.query.get("limit", "0"))
        except ValueError:
            raise ApiError(400, "limit must be an integer") from None
        if limit <= 0 or start + limit >= len(items):
            return items[start:], ""
        page = items[start : start + limit]
        last = page[-1]["metadata"]
        state = {"rv": rv, "ns": last.get("namespace", ""), "name": last["name"]}
        return page, base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        try:
            timeout = float(request.query.get("timeoutSeconds", DEFAULT_WATCH_TIMEOUT_S))
        except ValueError:
            raise ApiError(400, "timeoutSeconds must be a number") from None
        wants_table = self._wants_table(request)
        include = request.query.get("includeObject", "Metadata")
        present = self.cluster.present

        def render(obj: Any) -> Any:
            shown = present(info, obj)
            if wants_table:
                rv = obj["metadata"].get("resourceVersion", "")
                return table.to_table(info, [shown], include, {"resourceVersion": rv})
            return shown

        req = watch.WatchRequest(
            info=info,
            namespace=target.namespace,
            matcher=self._matcher(request, info),
            resource_version=request.query.get("resourceVersion"),
            bookmarks=flag(request.query.get("allowWatchBookmarks")),
            send_initial_events=flag(request.query.get("sendInitialEvents")),
            timeout_s=timeout,
            bookmark_interval_s=self.config.bookmark_interval_s,
            render=render,
            line_cache=None if wants_table else self.line_cache,
        )
        return await watch.stream(request, self.cluster.store, req)
