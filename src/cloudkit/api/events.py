"""The core/v1 Event that tells a ComputeInstance's owner something (one shape, two writers).

The operator records its lifecycle events and the local stack reports instances it will not
reconcile; both write this object, so `kubectl describe ci` shows them alike.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from cloudkit.api import names

MAX_MESSAGE = 1024
"""kube-apiserver refuses longer Event messages."""


def instance_event(
    metadata: dict[str, Any],
    *,
    reason: str,
    message: str,
    type_: str,
    component: str,
    reporting_instance: str | None = None,
) -> dict[str, Any]:
    """A new Event about the instance with this metadata (unique name, counted once)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    involved: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "uid": metadata.get("uid"),
    }
    if metadata.get("resourceVersion"):
        involved["resourceVersion"] = metadata["resourceVersion"]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata['name']}.{secrets.token_hex(8)}",
            "namespace": metadata["namespace"],
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    if reporting_instance:
        body["reportingInstance"] = reporting_instance
    return body
