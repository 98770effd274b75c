"""Reading Markdown documents the way the docs tests need: sections, table rows, code names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"


def section(text: str, heading: str) -> str:
    """The body under the heading line `heading` (e.g. "## Events") up to the next heading of
    the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    try:
        start = lines.index(heading) + 1
    except ValueError:
        raise AssertionError(f"no heading {heading!r}") from None
    end = len(lines)
    for i in range(start, len(lines)):
        match = re.match(r"(#+) ", lines[i])
        if match and len(match.group(1)) <= level:
            end = i
            break
    return "\n".join(lines[start:end])


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table body row in `text` (header and rule rows dropped)."""
    rows: list[list[str]] = []
    in_body = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_body = False
        elif re.fullmatch(r"\|[-:| ]+\|", line):
            in_body = True  # the rule under a header: body rows follow
        elif in_body:
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_names(cell: str) -> set[str]:
    """Names in backticks that look like identifiers (CamelCase reasons, VARIABLE_NAMES)."""
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cell))
