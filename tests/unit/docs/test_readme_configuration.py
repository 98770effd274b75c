"""The README's configuration table names every variable the operator reads, and no other."""

from __future__ import annotations

import re

from tests.unit.docs.code_facts import variables_read_by_operator
from tests.unit.docs.doc_text import ROOT


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration (operator)", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(CLOUDKIT_[A-Z_]+)`", section))
    for suffix in re.findall(r"`\.\.\.(_[A-Z_]+)`", section):
        names.add(f"CLOUDKIT_COMPUTE_INSTANCE{suffix}")
    return names


def test_every_variable_is_documented_and_every_documented_one_is_read() -> None:
    read, documented = variables_read_by_operator(), _documented()
    assert read, "no variables found: the reader no longer finds what settings.py reads"
    assert read - documented == set(), "read by the operator but missing from the README"
    assert documented - read == set(), "in the README but read by nobody"
