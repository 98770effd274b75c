"""What the operator reads out of Kubernetes objects and error answers, without a server:
keys, a Status answer's message, Retry-After, and the guarded finalizer patch."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from multidict import CIMultiDict

from cloudkit.operator.kube_objects import (
    STATUS_MESSAGE_LIMIT,
    describe,
    finalizers_patch,
    object_key,
    retry_after,
    status_message,
)


def test_an_object_s_key_is_its_namespace_and_name_even_when_either_is_missing() -> None:
    assert object_key({"metadata": {"namespace": "tenant", "name": "ci-1"}}) == ("tenant", "ci-1")
    assert object_key({"metadata": {"name": "crd"}}) == ("", "crd")
    assert object_key({}) == ("", "")
    assert describe({"metadata": {"namespace": "tenant", "name": "ci-1"}}) == "tenant/ci-1"


@pytest.mark.parametrize(
    ("body", "reason", "expected"),
    [
        (b'{"kind":"Status","message":"leases is forbidden"}', "Forbidden", "leases is forbidden"),
        ('{"kind":"Status","message":"gone"}', "Gone", "gone"),
        (b"<html>bad gateway</html>", "Bad Gateway", "Bad Gateway"),
        (b'{"kind":"Status","message":42}', "Conflict", "Conflict"),
        (b'["not", "a", "status"]', "Teapot", "Teapot"),
        (None, None, ""),
    ],
)
def test_a_status_answer_s_message_else_the_http_reason(
    body: Any, reason: str | None, expected: str
) -> None:
    assert status_message(body, reason) == expected


def test_a_long_status_message_is_cut() -> None:
    long = "x" * (STATUS_MESSAGE_LIMIT * 3)
    assert status_message(json.dumps({"message": long}).encode(), "") == "x" * STATUS_MESSAGE_LIMIT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (CIMultiDict({"Retry-After": "7"}), timedelta(seconds=7)),
        (CIMultiDict({"retry-after": "3"}), timedelta(seconds=3)),  # header names ignore case
        ({"Retry-After": "-5"}, timedelta(0)),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_is_whole_seconds_or_nothing(headers: Any, expected: timedelta | None) -> None:
    assert retry_after(headers) == expected


def test_the_finalizer_patch_first_tests_the_version_it_was_computed_from() -> None:
    instance = {"metadata": {"name": "ci-1", "resourceVersion": "41", "finalizers": ["a"]}}
    patch = finalizers_patch(instance, ["a", "b"])
    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["a", "b"]},
    ]
