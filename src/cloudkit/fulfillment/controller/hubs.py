"""Which cluster a hub is: its `kubeconfig_ref` names a kubeconfig this controller was given.

The controller is started with a directory of kubeconfigs (one file per cluster it may act on);
a hub's reference is a file *name* in it. A reference is data from the API (an admin wrote it),
so it is never used as a path: anything but a plain name (a `/`, `..`, a leading dot) is
refused, and a name without a file is a hub this controller cannot serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudkit.fulfillment.controller.decision import Refused

Object = dict[str, Any]

# A file name: no separator, no `..`, no hidden file; a DNS-ish name is what people write.
KUBECONFIG_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


@dataclass(frozen=True)
class Hub:
    """A hub this controller can act on: its id, the namespace of its resources, its kubeconfig."""

    id: str
    namespace: str
    kubeconfig: Path


@dataclass(frozen=True)
class HubKubeconfigs:
    """The kubeconfigs this controller may use, one file per cluster in `directory`."""

    directory: Path

    def path_of(self, ref: str) -> Path | None:
        """The kubeconfig a reference names; None if it is not a plain name or has no file."""
        if not KUBECONFIG_REF.match(ref) or ".." in ref:
            return None
        path = self.directory / ref
        return path if path.is_file() else None

    def hub(self, record: Object) -> Hub:
        """The hub record as a cluster to act on; Refused (naming the hub) if it cannot be."""
        spec = record.get("spec") or {}
        ref, namespace = str(spec.get("kubeconfig_ref") or ""), str(spec.get("namespace") or "")
        path = self.path_of(ref)
        if path is None:
            # The reference is an admin's data, not a secret: naming it tells them what to fix.
            raise Refused(
                f"hub {record.get('id')}: kubeconfig_ref {ref!r} is not a kubeconfig this "
                "controller was given"
            )
        return Hub(str(record.get("id")), namespace, path)

    def usable(self, hubs: list[Object]) -> list[Hub]:
        """The live hubs this controller can act on, oldest first (placement prefers them)."""
        ordered = sorted(
            (h for h in hubs if not (h.get("metadata") or {}).get("deletion_timestamp")),
            key=lambda h: (
                str((h.get("metadata") or {}).get("creation_timestamp") or ""),
                str(h.get("id")),
            ),
        )
        found = []
        for record in ordered:
            try:
                found.append(self.hub(record))
            except Refused:
                continue
        return found
