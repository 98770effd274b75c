"""Wire contract of the local API server over real sockets (reference kube-api-subset.md)."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.apiserver.apiserver_client import (
    CONFIGMAPS,
    WIDGETS,
    Api,
    configmap,
    read_events,
    widget,
)

pytestmark = pytest.mark.stack


async def test_auth_and_status_errors(api: Api) -> None:
    status, body, _ = await api.call("GET", "/api/v1/namespaces", token="wrong")
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    status, body, _ = await api.call("GET", CONFIGMAPS + "/missing")
    assert status == 404
    assert body["reason"] == "NotFound" and body["details"]["kind"] == "configmaps"
    assert body["message"] == 'configmaps "missing" not found'


async def test_discovery_shapes(api: Api) -> None:
    version = await api.ok("GET", "/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.3")
    assert (await api.ok("GET", "/api"))["versions"] == ["v1"]
    groups = (await api.ok("GET", "/apis"))["groups"]
    for group in groups:
        assert group["preferredVersion"] in group["versions"]
        doc = await api.ok("GET", f"/apis/{group['preferredVersion']['groupVersion']}")
        assert all("kind" in r and "singularName" in r for r in doc["resources"])
    core = await api.ok("GET", "/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {"namespaces", "configmaps", "secrets", "events", "namespaces/status"} <= names
    namespaces = await api.ok("GET", "/api/v1/namespaces")
    assert {n["metadata"]["name"] for n in namespaces["items"]} == {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
    }
    # OpenAPI v2 has no models (kubectl validates `kind: List` against it, then skips them).
    v2 = await api.ok("GET", "/openapi/v2")
    assert v2["swagger"] == "2.0" and v2["definitions"] == {}


async def test_crd_served_with_status_and_subresource(api: Api) -> None:
    crd = await api.install_widgets()
    assert crd["spec"]["names"]["listKind"] == "WidgetList"
    got = await api.ok(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    )
    conditions = {c["type"]: c for c in got["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    doc = await api.ok("GET", "/apis/test.cloudkit.dev/v1")
    assert {r["name"] for r in doc["resources"]} == {"widgets", "widgets/status"}
    created = await api.ok("POST", WIDGETS, {**widget("w1"), "status": {"phase": "x"}})
    assert created["metadata"]["generation"] == 1 and "status" not in created
    # main-resource writes keep status; /status writes only status
    done = await api.ok(
        "PATCH",
        WIDGETS + "/w1/status",
        {"status": {"phase": "Ready"}, "spec": {"size": 9}},
        content_type="application/merge-patch+json",
    )
    assert done["status"]["phase"] == "Ready" and done["spec"]["size"] == 1
    assert done["metadata"]["generation"] == 1
    bumped = await api.ok(
        "PATCH",
        WIDGETS + "/w1",
        {"spec": {"size": 2}, "status": {"phase": "no"}},
        content_type="application/merge-patch+json",
    )
    assert bumped["metadata"]["generation"] == 2 and bumped["status"]["phase"] == "Ready"
    meta_only = await api.ok(
        "PATCH",
        WIDGETS + "/w1",
        {"metadata": {"labels": {"a": "b"}}},
        content_type="application/merge-patch+json",
    )
    assert meta_only["metadata"]["generation"] == 2


async def test_create_rules(api: Api) -> None:
    await api.install_widgets()
    status, body, _ = await api.call("POST", WIDGETS, widget("w1"))
    assert status == 201
    status, body, _ = await api.call("POST", WIDGETS, widget("w1"))
    assert status == 409 and body["reason"] == "AlreadyExists"
    status, body, _ = await api.call("POST", WIDGETS, {**widget(""), "metadata": {}})
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    gen = await api.ok("POST", WIDGETS, {**widget(""), "metadata": {"generateName": "w-"}})
    assert gen["metadata"]["name"].startswith("w-") and len(gen["metadata"]["name"]) == 7
    status, body, _ = await api.call("POST", "/api/v1/namespaces/nope/configmaps", configmap("c"))
    assert status == 404
    status, body, _ = await api.call("POST", WIDGETS, {**widget("x"), "kind": "Other"})
    assert status == 400


async def test_put_requires_rv_and_stale_rv_conflicts(api: Api) -> None:
    await api.install_widgets()
    obj = await api.ok("POST", WIDGETS, widget("w1"))
    no_rv = widget("w1", 2)
    status, body, _ = await api.call("PUT", WIDGETS + "/w1", no_rv)
    assert status == 422 and "must be specified for an update" in body["message"]
    stale = {
        **widget("w1", 3),
        "metadata": {"name": "w1", "resourceVersion": obj["metadata"]["resourceVersion"]},
    }
    first, second = await asyncio.gather(
        api.call("PUT", WIDGETS + "/w1", stale),
        api.call("PUT", WIDGETS + "/w1", {**stale, "spec": {"size": 4, "zone": "a"}}),
    )
    assert sorted([first[0], second[0]]) == [200, 409]
    loser = first if first[0] == 409 else second
    assert loser[1]["reason"] == "Conflict"
    assert "the object has been modified" in loser[1]["message"]


async def test_noop_write_keeps_rv_and_sends_no_event(api: Api) -> None:
    obj = await api.ok("POST", CONFIGMAPS, configmap("c1"))
    rv = obj["metadata"]["resourceVersion"]
    async with api.watch(CONFIGMAPS, {"resourceVersion": rv, "timeoutSeconds": "2"}) as resp:
        same = await api.ok(
            "PATCH", CONFIGMAPS + "/c1", {"data": {}}, content_type="application/merge-patch+json"
        )
        assert same["metadata"]["resourceVersion"] == rv
        changed = await api.ok(
            "PATCH",
            CONFIGMAPS + "/c1",
            {"data": {"k": "v"}},
            content_type="application/merge-patch+json",
        )
        events = await read_events(resp, 1)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("MODIFIED", changed["metadata"]["resourceVersion"])
    ]


async def test_json_patch_rules(api: Api) -> None:
    await api.ok("POST", CONFIGMAPS, configmap("c1", annotations={"a/b": "1"}))
    ops = [
        {"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": []},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "x.io/f"},
        {"op": "copy", "from": "/metadata/annotations/a~1b", "path": "/data/k"},
        {"op": "move", "from": "/data/k", "path": "/data/m"},
        {"op": "replace", "path": "/data/m", "value": "2"},
        {"op": "remove", "path": "/metadata/annotations/a~1b"},
    ]
    got = await api.ok("PATCH", CONFIGMAPS + "/c1", ops, content_type="application/json-patch+json")
    assert got["data"] == {"m": "2"} and got["metadata"]["finalizers"] == ["x.io/f"]
    assert "a/b" not in got["metadata"].get("annotations", {})
    status, body, _ = await api.call(
        "PATCH",
        CONFIGMAPS + "/c1",
        [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}],
        content_type="application/json-patch+json",
    )
    assert status == 422 and body["reason"] == "Invalid"
    status, _, _ = await api.call(
        "PATCH", CONFIGMAPS + "/c1", {"a": 1}, content_type="application/json-patch+json"
    )
    assert status == 400
    status, _, _ = await api.call("PATCH", CONFIGMAPS + "/c1", {"a": 1}, content_type="text/plain")
    assert status == 415


async def test_strategic_merge_for_builtins_415_for_crs(api: Api) -> None:
    await api.install_widgets()
    await api.ok("POST", WIDGETS, widget("w1"))
    status, body, _ = await api.call(
        "PATCH",
        WIDGETS + "/w1",
        {"spec": {"size": 2}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    await api.ok(
        "POST",
        CONFIGMAPS,
        configmap(
            "c1",
            finalizers=["a.io/x"],
            ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1"}],
        ),
    )
    got = await api.ok(
        "PATCH",
        CONFIGMAPS + "/c1",
        {
            "metadata": {
                "finalizers": ["b.io/y"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "p", "uid": "u2"}
                ],
            },
            "data": {"k": "v"},
        },
        content_type="application/strategic-merge-patch+json; charset=utf-8",
    )
    assert got["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    assert [r["uid"] for r in got["metadata"]["ownerReferences"]] == ["u1", "u2"]
    got = await api.ok(
        "PATCH",
        CONFIGMAPS + "/c1",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x", "b.io/y"]}},
        content_type="application/strategic-merge-patch+json",
    )
    assert "finalizers" not in got["metadata"] or got["metadata"]["finalizers"] == []


async def test_apply_patch_creates_and_requires_field_manager(api: Api) -> None:
    body = configmap("c1")
    status, _, _ = await api.call(
        "PATCH", CONFIGMAPS + "/c1", body, content_type="application/apply-patch+yaml"
    )
    assert status == 422
    status, got, _ = await api.call(
        "PATCH",
        CONFIGMAPS + "/c1",
        body,
        content_type="application/apply-patch+yaml",
        params={"fieldManager": "me"},
    )
    assert status == 201 and got["metadata"]["name"] == "c1"
    status, got, _ = await api.call(
        "PATCH",
        CONFIGMAPS + "/c1",
        {**body, "data": {"a": "b"}},
        content_type="application/apply-patch+yaml",
        params={"fieldManager": "me", "force": "true"},
    )
    assert status == 200 and got["data"] == {"a": "b"}


async def test_dry_run_stores_nothing(api: Api) -> None:
    status, _, _ = await api.call("POST", CONFIGMAPS, configmap("c1"), params={"dryRun": "All"})
    assert status == 201
    status, _, _ = await api.call("GET", CONFIGMAPS + "/c1")
    assert status == 404


async def test_selectors_and_paging(api: Api) -> None:
    for i in range(5):
        await api.ok(
            "POST",
            CONFIGMAPS,
            configmap(f"c{i}", labels={"tier": "a" if i < 3 else "b", "n": str(i)}),
        )

    async def names(params: dict[str, str]) -> list[str]:
        return [
            o["metadata"]["name"] for o in (await api.ok("GET", CONFIGMAPS, params=params))["items"]
        ]

    assert await names({"labelSelector": "tier=a"}) == ["c0", "c1", "c2"]
    assert await names({"labelSelector": "tier in (b),n!=4"}) == ["c3"]
    assert await names({"labelSelector": "!tier"}) == []
    assert await names({"labelSelector": "n>2"}) == ["c3", "c4"]
    assert await names({"fieldSelector": "metadata.name=c2"}) == ["c2"]
    status, body, _ = await api.call("GET", CONFIGMAPS, params={"fieldSelector": "spec.x=1"})
    assert status == 400 and "field label not supported" in body["message"]
    status, _, _ = await api.call("GET", CONFIGMAPS, params={"labelSelector": "a in (b"})
    assert status == 400
    page = await api.ok("GET", CONFIGMAPS, params={"limit": "2"})
    seen = [o["metadata"]["name"] for o in page["items"]]
    while page["metadata"].get("continue"):
        page = await api.ok(
            "GET", CONFIGMAPS, params={"limit": "2", "continue": page["metadata"]["continue"]}
        )
        seen += [o["metadata"]["name"] for o in page["items"]]
    assert seen == [f"c{i}" for i in range(5)]


async def test_table_output_with_printer_columns(api: Api) -> None:
    await api.install_widgets()
    await api.ok("POST", WIDGETS, widget("w1", 3))
    table = await api.ok(
        "GET", WIDGETS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Phase", "Age"]
    assert table["rows"][0]["cells"][:3] == ["w1", 3, None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_openapi_v3_patch_has_field_validation(api: Api) -> None:
    await api.install_widgets()
    index = await api.ok("GET", "/openapi/v3")
    url = index["paths"]["apis/test.cloudkit.dev/v1"]["serverRelativeURL"]
    doc = await api.ok("GET", url)
    patches = [p["patch"] for p in doc["paths"].values() if "patch" in p]
    assert any(
        op["x-kubernetes-group-version-kind"]["kind"] == "Widget"
        and any(param["name"] == "fieldValidation" for param in op["parameters"])
        for op in patches
    )
    assert "api/v1" in index["paths"]


async def test_delete_collection_by_label(api: Api) -> None:
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        await api.ok("POST", CONFIGMAPS, configmap(name, labels={"tier": tier}))
    deleted = await api.ok("DELETE", CONFIGMAPS, params={"labelSelector": "tier=x"})
    assert sorted(o["metadata"]["name"] for o in deleted["items"]) == ["a", "b"]
    left = await api.ok("GET", CONFIGMAPS)
    assert [o["metadata"]["name"] for o in left["items"]] == ["c"]


async def test_field_validation_for_builtins(api: Api) -> None:
    typo = {**configmap("c1"), "datta": {"a": "b"}}
    status, body, _ = await api.call("POST", CONFIGMAPS, typo, params={"fieldValidation": "Strict"})
    assert status == 400 and 'unknown field "datta"' in body["message"]
    status, body, headers = await api.call("POST", CONFIGMAPS, typo)
    assert status == 201 and "datta" not in body
    assert headers["Warning"] == '299 - "unknown field \\"datta\\""'


async def test_crd_name_conflict_not_served(api: Api) -> None:
    crd = await api.install_widgets()
    clash = {**crd, "metadata": {"name": "gadgets.test.cloudkit.dev"}}
    clash["spec"] = {**crd["spec"], "names": {"plural": "gadgets", "kind": "Widget"}}
    clash.pop("status")
    made = await api.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", clash)
    conditions = {c["type"]: c["status"] for c in made["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "False", "Established": "False"}
    status, _, _ = await api.call("GET", "/apis/test.cloudkit.dev/v1/namespaces/default/gadgets")
    assert status == 404


async def test_list_with_future_resource_version(api: Api) -> None:
    status, body, _ = await api.call("GET", CONFIGMAPS, params={"resourceVersion": "99999"})
    assert status == 504 and "Too large resource version" in body["message"]
    assert (await api.call("GET", CONFIGMAPS, params={"resourceVersion": "0"}))[0] == 200
