"""kopf runs without a diff base (kopf_storage.py); that is only right while the operator
registers no change handlers, whose diffs would then always be empty."""

from __future__ import annotations

import kopf

from cloudkit.operator.kopf_storage import NoDiffBase
from cloudkit.operator.shell import build_registry, kopf_settings


def test_the_registry_has_no_change_or_daemon_handlers() -> None:
    registry = build_registry()
    # kopf has no public listing of handlers by kind; its registries are read directly here.
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []
    assert list(registry._watching.get_all_handlers()), "the event handlers are registered"


def test_the_operator_settings_use_the_empty_diff_base() -> None:
    storage = kopf_settings().persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"metadata": {"name": "a", "annotations": {"x": "y"}}, "spec": {"cores": 2}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
