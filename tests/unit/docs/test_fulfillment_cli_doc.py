"""docs/fulfillment.md's CLI section names every option of the tenant's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from cloudkit.cli import app

DOC = Path(__file__).parents[3] / "docs" / "fulfillment.md"


def _command(*path: str) -> Any:
    # Typer's own click types: read them by duck typing.
    command: Any = typer.main.get_command(app)
    for name in path:
        found = command.commands.get(name)
        assert found is not None, name
        command = found
    return command


@pytest.mark.parametrize(
    "path",
    [
        ("login",),
        ("token",),
        ("create", "computeinstance"),
        ("get", "computeinstances"),
        ("describe", "computeinstance"),
        ("delete", "computeinstance"),
    ],
)
def test_every_option_is_documented(path: tuple[str, ...]) -> None:
    section = DOC.read_text().split("## Tokens", 1)[1]
    assert f"{' '.join(path)}" in section
    for param in _command(*path).params:
        if param.param_type_name == "option" and "--help" not in param.opts:
            names = list(param.opts)
            assert any(name in section for name in names), f"{' '.join(path)}: {param.opts}"
