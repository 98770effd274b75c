"""Suite-wide collection rules: which tests must share a worker when the suite runs in parallel.

`make test` spreads tests over worker processes one by one (`--dist loadgroup`), so a slow
module does not hold one worker for all its tests. A test that uses a module- or
package-scoped fixture (a stack, an activation, a built wheel) is kept on one worker with the
rest of its module, so that fixture starts once rather than once per worker.
"""

from __future__ import annotations

import pytest

SHARED_SCOPES = {"module", "package", "class"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group") is not None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        module = getattr(item, "module", None)
        if scopes & SHARED_SCOPES and module is not None:
            item.add_marker(pytest.mark.xdist_group(module.__name__))
