"""The README's configuration table names every variable the operator reads, and no other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OPERATOR = ROOT / "src" / "cloudkit" / "operator"


def _read_by_operator() -> set[str]:
    names: set[str] = set()
    for module in OPERATOR.glob("*.py"):
        found = re.findall(r'"(CLOUDKIT_[A-Z_]+)"', module.read_text())
        names |= {name for name in found if not name.endswith("_")}  # not a bare prefix
    # Built with an f-string prefix in settings.py.
    for text in re.findall(r'f"\{prefix\}([A-Z_]+)"', (OPERATOR / "settings.py").read_text()):
        names.add(f"CLOUDKIT_COMPUTE_INSTANCE_{text}")
    return names


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration (operator)", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(CLOUDKIT_[A-Z_]+)`", section))
    for suffix in re.findall(r"`\.\.\.(_[A-Z_]+)`", section):
        names.add(f"CLOUDKIT_COMPUTE_INSTANCE{suffix}")
    return names


def test_every_variable_is_documented_and_every_documented_one_is_read() -> None:
    read, documented = _read_by_operator(), _documented()
    assert read, "no variables found: the pattern no longer matches settings.py"
    assert read - documented == set(), "read by the operator but missing from the README"
    assert documented - read == set(), "in the README but read by nobody"
