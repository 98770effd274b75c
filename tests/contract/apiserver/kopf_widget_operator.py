"""A minimal kopf operator for the contract test: create/update/delete handlers on Widgets."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 0
    settings.watching.server_timeout = 30


@kopf.on.create("test.cloudkit.dev", "v1", "widgets")
def created(spec: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    patch.status["phase"] = f"Created-{spec.get('size')}"
    logger.info("HANDLER create")


@kopf.on.update("test.cloudkit.dev", "v1", "widgets")
def updated(spec: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    patch.status["phase"] = f"Updated-{spec.get('size')}"
    logger.info("HANDLER update")


@kopf.on.delete("test.cloudkit.dev", "v1", "widgets")
def deleted(logger: Any, **_: Any) -> None:
    logger.info("HANDLER delete")
