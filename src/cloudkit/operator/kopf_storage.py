"""kopf without a diff base: the operator registers event handlers only.

kopf computes an object's "essence" (a deep copy of it, minus status and system fields) on every
watch event and compares it with a stored one, to find the changes its change handlers
(`on.create`/`on.update`) would get. The operator has none: every event only enqueues a key.
That deep copy and comparison were ~12% of the operator's CPU in the scale benchmark (each
lifecycle brings ~20 watch events), so this storage builds an empty essence and stores nothing.
kopf documents diff-base storages as pluggable (`settings.persistence.diffbase_storage`); should
a change handler ever be registered, its diffs would always be empty, which
`test_kopf_storage.py` guards against by checking that the registry has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """An empty essence for every object; nothing fetched, nothing stored."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None
