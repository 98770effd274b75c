"""docs/operator-guide.md lists every variable the operator reads and every metric it exports,
and nothing else: checked both ways against the code (tests/unit/docs/code_facts.py)."""

from __future__ import annotations

from tests.unit.docs.code_facts import (
    metric_names,
    other_environment_read_by_operator,
    variables_read_by_operator,
)
from tests.unit.docs.doc_text import DOCS, code_names, section, table_rows

GUIDE = DOCS / "operator-guide.md"


def _first_cells(heading: str) -> set[str]:
    body = section(GUIDE.read_text(), heading)
    return {name for row in table_rows(body) for name in code_names(row[0])}


def test_every_variable_read_is_in_the_guide_and_every_listed_one_is_read() -> None:
    read = variables_read_by_operator() | other_environment_read_by_operator()
    documented = _first_cells("## Variables")
    assert "CLOUDKIT_PROVISIONING_PROVIDER" in read, "the reader no longer finds the settings"
    assert read - documented == set(), "read by the operator but missing from the guide"
    assert documented - read == set(), "in the guide but read by nobody"


def test_every_metric_exported_is_in_the_guide_and_every_listed_one_exists() -> None:
    exported, documented = metric_names(), _first_cells("## Metrics")
    assert exported, "no metrics found"
    assert exported - documented == set(), "exported but missing from the guide"
    assert documented - exported == set(), "in the guide but not exported"
