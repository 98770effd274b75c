"""The spec's config version: the FNV-1a 64-bit hash of its Go-style JSON, as upstream computes it.

Matching upstream byte for byte means instances migrated from the Go operator are not
re-provisioned: the playbook echoes this value back in the reconciled-config-version annotation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudkit.api.models import ComputeInstanceSpec

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF

# Go's struct field order for the spec (encoding/json emits fields in declaration order).
_GO_FIELD_ORDER = (
    "templateID",
    "templateParameters",
    "image",
    "cores",
    "memoryGiB",
    "bootDisk",
    "additionalDisks",
    "runStrategy",
    "userDataSecretRef",
    "sshKey",
    "restartRequestedAt",
)


def fnv1a_64(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & _MASK
    return h


def _go_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_json(spec: ComputeInstanceSpec) -> str:
    """Serialize like Go's encoding/json: declaration order, no spaces, `<>&` escaped."""
    wire: dict[str, Any] = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    ordered: dict[str, Any] = {}
    for key in _GO_FIELD_ORDER:
        if key in wire and wire[key] not in ("", None):
            ordered[key] = wire[key]
    if spec.restart_requested_at is not None:
        ordered["restartRequestedAt"] = _go_time(spec.restart_requested_at)
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def config_version(spec: ComputeInstanceSpec) -> str:
    """16 lowercase hex digits of FNV-1a 64 over the Go JSON of the spec."""
    return f"{fnv1a_64(go_json(spec).encode()):016x}"
