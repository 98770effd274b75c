"""Which instance an AWX job notification is about (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.notifications import instance_of


def notification(extra_vars: Any) -> dict[str, Any]:
    return {"id": 7, "status": "successful", "extra_vars": extra_vars}


def test_instance_from_the_launch_payload() -> None:
    extra_vars = {
        "ansible_eda": {"event": {"payload": {"metadata": {"name": "vm1", "namespace": "ns"}}}},
        "cloudkit_correlation_id": "uid-provision-1",
    }
    assert instance_of(notification(json.dumps(extra_vars))) == InstanceKey("ns", "vm1")
    assert instance_of(notification(extra_vars)) == InstanceKey("ns", "vm1")


@pytest.mark.parametrize(
    "extra_vars",
    [
        "",
        "not json",
        "[]",
        json.dumps({"who": "else"}),
        json.dumps({"ansible_eda": {"event": {"payload": {"metadata": {"name": "x"}}}}}),
        json.dumps({"ansible_eda": {"event": {"payload": "text"}}}),
        None,
    ],
)
def test_notifications_about_nothing_of_ours(extra_vars: Any) -> None:
    assert instance_of(notification(extra_vars)) is None
