"""The versions the untrusted-input argument is proven on are the only ones installable.

docs/decisions.md ("A ComputeInstance is data on the automation host") is made, and its
contract tests run, on ansible-core 2.19: its `!unsafe` handling changed in 2.19 and may again.
A wider range in pyproject.toml would let `make install` bring a core nothing was proven on.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROVEN_CORE = "2.19"


def requirement(name: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_the_dependency_range_admits_only_the_proven_ansible_core() -> None:
    core = requirement("ansible-core").specifier
    assert core.contains(f"{PROVEN_CORE}.0") and core.contains(f"{PROVEN_CORE}.99")
    for other in ("2.17.14", "2.18.12", "2.20.0", "3.0.0"):
        assert not core.contains(other), other


def test_the_ansible_collections_range_is_the_release_built_for_that_core() -> None:
    """ansible N.x requires one core: 10 → 2.17, 11 → 2.18, 12 → 2.19, 13 → 2.20."""
    collections = requirement("ansible").specifier
    assert collections.contains("12.0.0") and collections.contains("12.99.0")
    assert not collections.contains("11.13.0") and not collections.contains("13.0.0")


def test_the_installed_core_is_the_proven_one() -> None:
    assert version("ansible-core").startswith(f"{PROVEN_CORE}."), version("ansible-core")
