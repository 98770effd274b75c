"""docs/troubleshooting.md has an entry for every event reason and condition reason the code can
write (and none for one that no longer exists), and names the fixed words of every job message.

The reasons and messages are read from the source's AST (tests/unit/docs/code_facts.py), so a
new `step.event(...)` or `set_condition(...)` without an entry fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.docs.code_facts import (
    Reason,
    condition_reasons,
    event_reasons,
    job_message_fragments,
    reasons_in_source,
)
from tests.unit.docs.doc_text import DOCS, code_names, section, table_rows

GUIDE = DOCS / "troubleshooting.md"


def _text() -> str:
    return GUIDE.read_text()


def test_every_event_reason_has_an_entry_and_every_entry_a_reason() -> None:
    documented = {
        name for row in table_rows(section(_text(), "## Events")) for name in code_names(row[0])
    }
    written = event_reasons()
    assert "ProvisionJobLaunched" in written, "the reader no longer finds the core's events"
    assert written - documented == set(), "events the operator writes without an entry"
    assert documented - written == set(), "entries for events nothing writes"


def test_every_condition_reason_has_an_entry_and_every_entry_a_reason() -> None:
    documented = {
        (condition, reason)
        for row in table_rows(section(_text(), "## Conditions"))
        for condition in code_names(row[0])
        for reason in code_names(row[2])
    }
    written = condition_reasons()
    assert ("Progressing", "ProvisioningFailed") in written, "the reader lost set_condition"
    assert written - documented == set(), "condition reasons written without an entry"
    assert documented - written == set(), "entries for condition reasons nothing writes"


def test_every_job_message_is_explained() -> None:
    body = section(_text(), "## Job messages")
    fragments = job_message_fragments()
    missing = {words: where for words, where in fragments.items() if words not in body}
    assert missing == {}, "job message words (written where shown) missing from the guide"


def test_the_reader_finds_a_reason_in_each_form_the_code_uses(tmp_path: Path) -> None:
    source = tmp_path / "planted.py"
    source.write_text(
        "PLANTED = 'FromConstant'\n"
        "def _fail(step, reason, message):\n"
        "    set_condition(status, ConditionType.RESTART_FAILED, 'True', reason, message)\n"
        "def act(step, outcome, job):\n"
        "    step.event(EventType.WARNING, 'Literal', 'x')\n"
        "    step.event(kind, f'{outcome.job_type.value.capitalize()}Done', 'x')\n"
        "    _fail(step, PLANTED, 'x')\n"
        "    set_condition(status, ConditionType.AVAILABLE, 'True', 'A' if ok else 'B', '')\n"
    )
    ast.parse(source.read_text())
    assert reasons_in_source(source) == {
        Reason("Literal", None, "planted.py:5"),
        Reason("ProvisionDone", None, "planted.py:6"),
        Reason("DeprovisionDone", None, "planted.py:6"),
        Reason("FromConstant", "RestartFailed", "planted.py:3"),
        Reason("A", "Available", "planted.py:8"),
        Reason("B", "Available", "planted.py:8"),
    }
