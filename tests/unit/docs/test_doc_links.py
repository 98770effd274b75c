"""Every relative link in the documents points at a file that exists and, with a #fragment, at
a heading of that file (GitHub's anchors), so moving a section cannot strand a reader."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.docs.doc_text import DOCS, ROOT

DOCUMENTS = (*sorted(DOCS.rglob("*.md")), ROOT / "README.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    in_code = False
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = re.match(r"#+ (.+)", line)
        if match and not in_code:
            text = match.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def test_relative_links_resolve_to_files_and_headings() -> None:
    broken: list[str] = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path_text, _, fragment = target.partition("#")
            path = (document.parent / path_text).resolve() if path_text else document
            where = f"{document.relative_to(ROOT)} → {target}"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif fragment and path.suffix == ".md" and fragment not in anchors(path):
                broken.append(f"{where}: no such heading")
    assert broken == []
