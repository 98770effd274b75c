"""Watch (RV resume, 410, bookmarks, initial events, selectors) and deletion/GC rules."""

from __future__ import annotations

from typing import Any

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
MERGE = "application/merge-patch+json"


async def test_watch_resume_replays_after_rv(api: Api) -> None:
    first = await api.ok("POST", CONFIGMAPS, configmap("c1"))
    second = await api.ok("POST", CONFIGMAPS, configmap("c2"))
    await api.ok("DELETE", CONFIGMAPS + "/c1")
    params = {"resourceVersion": first["metadata"]["resourceVersion"], "timeoutSeconds": "1"}
    async with api.watch(CONFIGMAPS, params) as resp:
        events = await read_events(resp, 10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "c2"),
        ("DELETED", "c1"),
    ]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs[0] == int(second["metadata"]["resourceVersion"]) and rvs[1] > rvs[0]


async def test_watch_from_an_unknown_rv_gives_410_in_stream(api: Api) -> None:
    # A future RV is a 504 "Too large resource version" (test_hostile_input.py).
    async with api.watch(CONFIGMAPS, {"resourceVersion": "not-a-version"}) as resp:
        assert resp.status == 200
        events = await read_events(resp, 2)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


async def test_watch_initial_events_and_bookmarks(api: Api) -> None:
    await api.ok("POST", CONFIGMAPS, configmap("c1"))
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "True",
        "timeoutSeconds": "3",
    }
    async with api.watch(CONFIGMAPS, params) as resp:
        events = await read_events(resp, 3)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "c1"
    end = events[1]
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    # the fixture asks for a bookmark every 0.5 s on idle streams
    assert events[2]["type"] == "BOOKMARK" and set(events[2]["object"]) == {
        "kind",
        "apiVersion",
        "metadata",
    }


async def test_watch_selector_transitions(api: Api) -> None:
    await api.ok("POST", CONFIGMAPS, configmap("c1", labels={"x": "1"}))
    params = {"labelSelector": "x=2", "timeoutSeconds": "2"}
    async with api.watch(CONFIGMAPS, params) as resp:
        await api.ok(
            "PATCH", CONFIGMAPS + "/c1", {"metadata": {"labels": {"x": "2"}}}, content_type=MERGE
        )
        await api.ok(
            "PATCH", CONFIGMAPS + "/c1", {"metadata": {"labels": {"x": "3"}}}, content_type=MERGE
        )
        events = await read_events(resp, 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_replayed_changes_keep_selector_transitions(api: Api) -> None:
    """A watch resumed from an older resourceVersion sees the same transitions as a live one:
    the change log keeps each change's previous version (as text) to tell them."""
    created = await api.ok("POST", CONFIGMAPS, configmap("c1", labels={"x": "1"}))
    for value in ("2", "3"):
        await api.ok("PATCH", CONFIGMAPS + "/c1", {"metadata": {"labels": {"x": value}}},
                     content_type=MERGE)  # fmt: skip
    since = created["metadata"]["resourceVersion"]
    params = {"labelSelector": "x=2", "resourceVersion": since, "timeoutSeconds": "2"}
    async with api.watch(CONFIGMAPS, params) as resp:
        events = await read_events(resp, 2)
    assert [(e["type"], e["object"]["metadata"]["labels"]) for e in events] == [
        ("ADDED", {"x": "2"}),
        ("DELETED", {"x": "3"}),
    ]


async def test_finalizers_block_deletion_and_only_shrink(api: Api) -> None:
    await api.install_widgets()
    await api.ok("POST", WIDGETS, widget("w1", finalizers=["a.io/f"]))
    deleting = await api.ok("DELETE", WIDGETS + "/w1")
    meta = deleting["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    assert meta["generation"] == 2
    again = await api.ok("DELETE", WIDGETS + "/w1")
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    status, body, _ = await api.call(
        "PATCH",
        WIDGETS + "/w1",
        {"metadata": {"finalizers": ["a.io/f", "b.io/g"]}},
        content_type=MERGE,
    )
    assert status == 422
    assert body["details"]["causes"][0]["reason"] == "FieldValueForbidden"
    assert body["details"]["causes"][0]["field"] == "metadata.finalizers"
    params = {"resourceVersion": meta["resourceVersion"], "timeoutSeconds": "1"}
    async with api.watch(WIDGETS, params) as resp:
        await api.ok(
            "PATCH", WIDGETS + "/w1", {"metadata": {"finalizers": None}}, content_type=MERGE
        )
        events = await read_events(resp, 5)
    assert [e["type"] for e in events] == ["DELETED"]
    status, _, _ = await api.call("GET", WIDGETS + "/w1")
    assert status == 404


def _owned(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    return configmap(name, ownerReferences=[ref])


async def test_garbage_collection_policies(api: Api) -> None:
    owner = await api.ok("POST", CONFIGMAPS, configmap("owner"))
    await api.ok("POST", CONFIGMAPS, _owned("dep", owner))
    done = await api.ok("DELETE", CONFIGMAPS + "/owner", {"propagationPolicy": "Background"})
    assert done["status"] == "Success" and done["details"]["uid"] == owner["metadata"]["uid"]
    assert (await api.call("GET", CONFIGMAPS + "/dep"))[0] == 404

    owner = await api.ok("POST", CONFIGMAPS, configmap("owner2"))
    await api.ok("POST", CONFIGMAPS, _owned("kept", owner))
    await api.ok("DELETE", CONFIGMAPS + "/owner2", {"propagationPolicy": "Orphan"})
    kept = await api.ok("GET", CONFIGMAPS + "/kept")
    assert "ownerReferences" not in kept["metadata"]

    owner = await api.ok("POST", CONFIGMAPS, configmap("owner3"))
    await api.ok(
        "POST",
        CONFIGMAPS,
        {
            **_owned("blocker", owner),
            "metadata": {**_owned("blocker", owner)["metadata"], "finalizers": ["a.io/f"]},
        },
    )
    pending = await api.ok("DELETE", CONFIGMAPS + "/owner3", {"propagationPolicy": "Foreground"})
    assert "foregroundDeletion" in pending["metadata"]["finalizers"]
    await api.ok(
        "PATCH", CONFIGMAPS + "/blocker", {"metadata": {"finalizers": None}}, content_type=MERGE
    )
    assert (await api.call("GET", CONFIGMAPS + "/owner3"))[0] == 404


async def test_namespace_termination(api: Api) -> None:
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    path = "/api/v1/namespaces/team/configmaps"
    await api.ok("POST", path, configmap("plain"))
    await api.ok("POST", path, configmap("held", finalizers=["a.io/f"]))
    ns = await api.ok("DELETE", "/api/v1/namespaces/team")
    assert ns["status"]["phase"] == "Terminating"
    assert (await api.call("GET", path + "/plain"))[0] == 404
    status, _, _ = await api.call("POST", path, configmap("new"))
    assert status == 403
    await api.ok("PATCH", path + "/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert (await api.call("GET", "/api/v1/namespaces/team"))[0] == 404


async def test_crd_deletion_deletes_its_resources(api: Api) -> None:
    crd = await api.install_widgets()
    await api.ok("POST", WIDGETS, widget("w1"))
    await api.ok("POST", WIDGETS, widget("w2", finalizers=["a.io/f"]))
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    pending = await api.ok("DELETE", crd_path)
    assert "customresourcecleanup.apiextensions.k8s.io" in pending["metadata"]["finalizers"]
    assert (await api.call("GET", WIDGETS + "/w1"))[0] == 404
    await api.ok("PATCH", WIDGETS + "/w2", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert (await api.call("GET", crd_path))[0] == 404
    assert (await api.call("GET", "/apis/test.cloudkit.dev/v1"))[0] == 404


async def test_discovery_updated_before_crd_watch_event(api: Api) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    async with api.watch(crds, {"timeoutSeconds": "5"}) as resp:
        await api.install_widgets()
        events = await read_events(resp, 1)
        assert events[0]["type"] == "ADDED"
        # kopf rescans the group as soon as it sees the event: it must already be served
        status, doc, _ = await api.call("GET", "/apis/test.cloudkit.dev/v1")
    assert status == 200 and doc["resources"][0]["kind"] == "Widget"


async def test_leases_and_events(api: Api) -> None:
    lease = {
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "me", "renewTime": "2026-01-01T00:00:00.123456Z"},
    }
    got = await api.ok("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)
    assert got["spec"]["renewTime"] == "2026-01-01T00:00:00.123456Z"
    event = {
        "metadata": {"generateName": "w1."},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Created",
        "type": "Normal",
        "message": "hello",
    }
    await api.ok("POST", "/api/v1/namespaces/default/events", event)
    found = await api.ok(
        "GET",
        "/api/v1/namespaces/default/events",
        params={"fieldSelector": "involvedObject.name=w1,involvedObject.kind=Widget"},
    )
    assert [e["reason"] for e in found["items"]] == ["Created"]
