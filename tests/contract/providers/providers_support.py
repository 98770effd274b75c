"""Helpers for the provider contract tests (a unique module name: `conftest` is ambiguous).

`instance` builds a ComputeInstance; waits go through `tests.waiting.until`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudkit.providers.aap import AapProvider

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates.yml"


def instance(name: str = "vm1", **status: Any) -> dict[str, Any]:
    """A ComputeInstance as the operator would hand it to a provider."""
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": name, "namespace": "tenant-a", "uid": f"uid-{name}"},
        "spec": {"templateID": "small", "cores": 1},
        "status": status,
    }


ProviderFactory = Callable[..., AapProvider]
