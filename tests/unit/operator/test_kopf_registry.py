"""kopf runs the operator's process and watches nothing: the watches are the operator's own
(watches.py). A resource handler registered with kopf would bring its per-event machinery back
(and, for a change handler, its diff-base annotations onto the objects)."""

from __future__ import annotations

from cloudkit.operator.shell import build_registry, kopf_settings


def test_the_registry_has_no_resource_handlers() -> None:
    registry = build_registry()
    # kopf has no public listing of handlers by kind; its registries are read directly here.
    assert list(registry._watching.get_all_handlers()) == []
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []
    assert list(registry._indexing.get_all_handlers()) == []
    assert list(registry._activities.get_all_handlers()), "startup and cleanup are registered"


def test_kopf_scans_nothing_and_posts_nothing() -> None:
    settings = kopf_settings()
    assert settings.scanning.disabled
    assert not settings.posting.enabled
