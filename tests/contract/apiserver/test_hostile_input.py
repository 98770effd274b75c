"""Bad input answered as kube-apiserver answers it, never a 500 and never half written:
body and annotation limits, nesting depth, the bearer scheme's case, watches from the future."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cloudkit.local.apiserver.bodies import MAX_DEPTH
from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.apiserver.apiserver_client import (
    CONFIGMAPS,
    WIDGETS,
    Api,
    configmap,
    read_events,
    widget,
)
from tests.harness.kube_clients import Watch, api_client

pytestmark = pytest.mark.stack

BODY_LIMIT = 3 * 1024 * 1024  # kube-apiserver's --max-request-body-bytes default
ANNOTATIONS_LIMIT = 256 * 1024  # TotalAnnotationSizeLimitB
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
GADGETS = "/apis/test.cloudkit.dev/v1/namespaces/default/gadgets"
GADGETS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.test.cloudkit.dev"},
    "spec": {
        "group": "test.cloudkit.dev",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


def _padded(doc: dict[str, Any], size: int) -> bytes:
    """Valid JSON of exactly `size` bytes (trailing whitespace)."""
    raw = json.dumps(doc).encode()
    return raw + b" " * (size - len(raw))


def _nested(depth: int) -> Any:
    """`depth` levels of containers counting the outermost: [[...{"k": 1}...]]."""
    value: Any = {"k": 1}
    for _ in range(depth - 1):
        value = [value]
    return value


def _assert_status(status: int, body: Any, code: int, reason: str) -> None:
    assert status == code, (status, body)
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    assert body["code"] == code and body["reason"] == reason, body


async def _unchanged(api: Api, path: str, before: dict[str, Any]) -> None:
    after = await api.ok("GET", path)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- request body size ----------------------------------------------------------------------


async def test_bodies_over_3_mib_are_413_on_every_write(api: Api) -> None:
    c1 = await api.ok("POST", CONFIGMAPS, configmap("c1"))
    big = _padded({**configmap("c1"), "data": {"k": "v"}}, BODY_LIMIT + 1)
    writes = [
        ("POST", CONFIGMAPS, "application/json", None),
        ("PUT", CONFIGMAPS + "/c1", "application/json", None),
        ("PATCH", CONFIGMAPS + "/c1", MERGE, None),
        ("PATCH", CONFIGMAPS + "/c1", JSON_PATCH, None),
        ("PATCH", CONFIGMAPS + "/c1", SMP, None),
        ("PATCH", CONFIGMAPS + "/c1", APPLY, {"fieldManager": "t"}),
        ("DELETE", CONFIGMAPS + "/c1", "application/json", None),
    ]
    for method, path, content_type, params in writes:
        status, body = await api.raw(method, path, big, content_type=content_type, params=params)
        _assert_status(status, body, 413, "RequestEntityTooLarge")
        assert body["message"] == "Request entity too large: limit is 3145728"
    await _unchanged(api, CONFIGMAPS + "/c1", c1)
    listed = await api.ok("GET", CONFIGMAPS)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c1"]


async def test_body_limit_is_exact_and_holds_for_chunked_bodies(api: Api) -> None:
    status, _ = await api.raw("POST", CONFIGMAPS, _padded(configmap("edge"), BODY_LIMIT))
    assert status == 201
    status, body = await api.raw("POST", CONFIGMAPS, _padded(configmap("over"), BODY_LIMIT + 1))
    _assert_status(status, body, 413, "RequestEntityTooLarge")

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(configmap("chunked")).encode()
        for _ in range(4):
            yield b" " * (1024 * 1024)

    status, body = await api.raw("POST", CONFIGMAPS, chunks())
    _assert_status(status, body, 413, "RequestEntityTooLarge")
    assert (await api.call("GET", CONFIGMAPS + "/chunked"))[0] == 404
    assert (await api.call("GET", CONFIGMAPS + "/over"))[0] == 404


# -- nesting depth --------------------------------------------------------------------------


async def test_json_nested_too_deep_is_400_on_every_write(api: Api) -> None:
    c1 = await api.ok("POST", CONFIGMAPS, configmap("c1"))
    # Far past Python's recursion limit, and just past ours (which Python could still parse).
    for depth in (50_000, MAX_DEPTH + 1):
        if depth > 10_000:
            deep = "[" * depth + "]" * depth
        else:
            deep = json.dumps({**configmap("c1"), "data": {"k": _nested(depth - 2)}})
        yaml_deep = "[" * depth + "]" * depth
        writes = [
            ("POST", CONFIGMAPS, "application/json", deep, None),
            ("PUT", CONFIGMAPS + "/c1", "application/json", deep, None),
            ("PATCH", CONFIGMAPS + "/c1", MERGE, deep, None),
            ("PATCH", CONFIGMAPS + "/c1", JSON_PATCH, deep, None),
            ("PATCH", CONFIGMAPS + "/c1", SMP, deep, None),
            ("PATCH", CONFIGMAPS + "/c1", APPLY, yaml_deep, {"fieldManager": "t"}),
            ("DELETE", CONFIGMAPS + "/c1", "application/json", deep, None),
        ]
        for method, path, content_type, text, params in writes:
            status, body = await api.raw(
                method, path, text.encode(), content_type=content_type, params=params
            )
            _assert_status(status, body, 400, "BadRequest")
            assert "nested deeper" in body["message"], (method, content_type, depth, body)
    await _unchanged(api, CONFIGMAPS + "/c1", c1)


async def test_yaml_alias_bomb_is_400(api: Api) -> None:
    await api.ok("POST", CONFIGMAPS, configmap("c1"))
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    status, body = await api.raw(
        "PATCH",
        CONFIGMAPS + "/c1",
        "\n".join(lines).encode(),
        content_type=APPLY,
        params={"fieldManager": "t"},
    )
    _assert_status(status, body, 400, "BadRequest")


async def test_nesting_up_to_the_limit_is_stored_and_served(api: Api) -> None:
    await api.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", GADGETS_CRD)
    # The object is 1 level, spec 2, so the value inside may take MAX_DEPTH - 2.
    deep = _nested(MAX_DEPTH - 2)
    gadget = {
        "apiVersion": "test.cloudkit.dev/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"v": deep},
    }
    async with api.watch(GADGETS, {"timeoutSeconds": "5"}) as watch:
        created = await api.ok("POST", GADGETS, gadget)
        assert created["spec"]["v"] == deep
        patched = await api.ok("PATCH", GADGETS + "/g1", {"spec": {"w": deep}}, content_type=MERGE)
        assert patched["spec"]["w"] == deep
        replaced = await api.ok(
            "PATCH",
            GADGETS + "/g1",
            [{"op": "replace", "path": "/spec/w", "value": deep}],
            content_type=JSON_PATCH,
        )
        assert replaced["spec"]["w"] == deep
        events = await read_events(watch, 2)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[1]["object"]["spec"]["w"] == deep


# -- annotations ----------------------------------------------------------------------------


def _annotations(total: int) -> dict[str, str]:
    """Annotations whose keys and values add up to exactly `total` bytes."""
    return {"a": "x" * (total - 1)}


async def test_annotations_over_256_kib_are_422_on_every_write(api: Api) -> None:
    ok = await api.ok(
        "POST", CONFIGMAPS, configmap("at-limit", annotations=_annotations(ANNOTATIONS_LIMIT))
    )
    assert len(ok["metadata"]["annotations"]["a"]) == ANNOTATIONS_LIMIT - 1
    too_many = _annotations(ANNOTATIONS_LIMIT + 1)
    status, body, _ = await api.call("POST", CONFIGMAPS, configmap("over", annotations=too_many))
    _assert_status(status, body, 422, "Invalid")
    assert body["message"] == (
        'ConfigMap "over" is invalid: metadata.annotations: Too long: must have at most '
        "262144 bytes"
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTooLong",
            "message": "Too long: must have at most 262144 bytes",
            "field": "metadata.annotations",
        }
    ]
    assert (await api.call("GET", CONFIGMAPS + "/over"))[0] == 404

    c1 = await api.ok("POST", CONFIGMAPS, configmap("c1", annotations={"b": "y"}))
    with_big = {**c1, "metadata": {**c1["metadata"], "annotations": too_many}}
    meta_patch = {"metadata": {"annotations": too_many}}
    writes: list[tuple[str, Any, str, dict[str, str] | None]] = [
        ("PUT", with_big, "application/json", None),
        ("PATCH", meta_patch, MERGE, None),
        ("PATCH", meta_patch, SMP, None),
        ("PATCH", [{"op": "add", "path": "/metadata/annotations/a", "value": too_many["a"]}],
         JSON_PATCH, None),
        ("PATCH", {**configmap("c1"), **meta_patch}, APPLY, {"fieldManager": "t"}),
    ]  # fmt: skip
    for method, payload, content_type, params in writes:
        status, body, _ = await api.call(
            method, CONFIGMAPS + "/c1", payload, content_type=content_type, params=params
        )
        _assert_status(status, body, 422, "Invalid")
        assert body["details"]["causes"][0]["field"] == "metadata.annotations", content_type
    await _unchanged(api, CONFIGMAPS + "/c1", c1)


async def test_annotation_limit_on_custom_resources_and_status_writes(api: Api) -> None:
    await api.install_widgets()
    too_many = _annotations(ANNOTATIONS_LIMIT + 1)
    status, body, _ = await api.call("POST", WIDGETS, widget("big", annotations=too_many))
    _assert_status(status, body, 422, "Invalid")
    assert body["message"].startswith('Widget.test.cloudkit.dev "big" is invalid: ')
    w1 = await api.ok("POST", WIDGETS, widget("w1"))
    status, body, _ = await api.call(
        "PATCH", WIDGETS + "/w1", {"metadata": {"annotations": too_many}}, content_type=MERGE
    )
    _assert_status(status, body, 422, "Invalid")
    # A /status write cannot change metadata at all, so it cannot carry annotations in.
    done = await api.ok(
        "PATCH",
        WIDGETS + "/w1/status",
        {"metadata": {"annotations": too_many}, "status": {"phase": "Ready"}},
        content_type=MERGE,
    )
    assert done["status"]["phase"] == "Ready" and not done["metadata"].get("annotations")
    assert done["metadata"]["resourceVersion"] != w1["metadata"]["resourceVersion"]


# -- authentication -------------------------------------------------------------------------


async def test_bearer_scheme_in_any_case_as_kube_apiserver(api: Api) -> None:
    token = api.handle.token
    accepted = [f"bearer {token}", f"BEARER {token}", f"  Bearer {token}  ", f"Bearer {token} x"]
    for header in accepted:
        status, _ = await api.raw("GET", CONFIGMAPS, None, authorization=header)
        assert status == 200, header
    refused = [
        f"Bearer  {token}",  # the token is the second space-separated word: here empty
        f"Basic {token}",
        token,
        "Bearer ",
        f"Bearer {token[:-1]}",
        f"Bearer {token}\u00e9",
    ]
    for header in refused:
        status, body = await api.raw("GET", CONFIGMAPS, None, authorization=header)
        _assert_status(status, body, 401, "Unauthorized")


# -- resource versions from the future ------------------------------------------------------


def _assert_too_large(status: dict[str, Any], requested: int) -> None:
    assert status["code"] == 504 and status["reason"] == "Timeout", status
    assert status["message"].startswith(f"Timeout: Too large resource version: {requested}, ")
    current = int(status["message"].rsplit(" ", 1)[1])
    assert current < requested
    assert status["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]
    assert status["details"]["retryAfterSeconds"] == 1


async def test_watch_and_list_from_a_future_rv_say_too_large(api: Api) -> None:
    await api.ok("POST", CONFIGMAPS, configmap("c1"))
    for params in (
        {"resourceVersion": "999999"},
        {
            "resourceVersion": "999999",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
        },
    ):
        async with api.watch(CONFIGMAPS, params) as resp:
            assert resp.status == 200
            events = await read_events(resp, 2)
        assert [e["type"] for e in events] == ["ERROR"], events
        _assert_too_large(events[0]["object"], 999999)
    status, body, _ = await api.call("GET", CONFIGMAPS, params={"resourceVersion": "999999"})
    assert status == 504
    _assert_too_large(body, 999999)
    # Not numbers at all: never a 500.
    for odd in ("\u00b2", "1" * 5000, "-1"):
        async with api.watch(CONFIGMAPS, {"resourceVersion": odd}) as resp:
            events = await read_events(resp, 2)
        assert [e["type"] for e in events] == ["ERROR"] and events[0]["object"]["code"] == 410
        status, _, _ = await api.call("GET", CONFIGMAPS, params={"resourceVersion": odd})
        assert status < 500


# -- the same answers through real clients --------------------------------------------------


def test_kubectl_and_python_client_get_the_real_errors(  # type: ignore[no-untyped-def]
    apiserver: ApiServerHandle, kubectl
) -> None:
    big = {**configmap("big"), "data": {"k": "x" * BODY_LIMIT}}
    created = kubectl("create", "--validate=false", "-f", "-", input=json.dumps(big))
    assert created.returncode != 0
    assert "Request entity too large: limit is 3145728" in created.stderr, created.stderr
    annotated = {**configmap("annotated", annotations=_annotations(ANNOTATIONS_LIMIT + 1))}
    created = kubectl("create", "--validate=false", "-f", "-", input=json.dumps(annotated))
    assert created.returncode != 0
    assert (
        'ConfigMap "annotated" is invalid: metadata.annotations: Too long: must have at most '
        "262144 bytes" in created.stderr
    ), created.stderr

    api = client.CoreV1Api(api_client(apiserver.kubeconfig))
    with pytest.raises(ApiException) as raised:
        for _ in Watch().stream(
            api.list_namespaced_config_map,
            "default",
            resource_version="999999",
            timeout_seconds=5,
        ):
            pass
    assert raised.value.status == 504
    assert "Too large resource version: 999999" in str(raised.value.reason)
