"""The local stack behind `cloudkit up`: its supervisor (start, stop, the `cloudkit up`
entry), the children it spawns and what they are told, the console people watch, and the
small Kubernetes client and process helpers the stack's parts share.

Modules, lowest first: `procs` (child processes), `kube` (async Kubernetes client),
`environment` (environments, URLs, tokens' places: pure), `backends` (automation service or
EDA activation), `children` (spawning each part), `fulfillment` and `fulfillment_controller`
(the tenants' side: issuer, service, controller and its hub), `strays` (instances outside the
watched namespace), `orders_view` (the tenants' orders beside their instances), `console` (what
a person sees; it is given data, never the supervisor) and `supervisor`.

The entry points are re-exported here and loaded on first use: the VM simulator and the EDA
activation import `stack.kube` and `stack.procs`, and the supervisor imports both of them, so
importing the supervisor with the package would be an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudkit.local.stack.supervisor import (
        INSTANCE_NAMESPACE,
        PROVIDERS,
        StackError,
        StackHandle,
        run,
        start_stack,
    )

__all__ = ["INSTANCE_NAMESPACE", "PROVIDERS", "StackError", "StackHandle", "run", "start_stack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("cloudkit.local.stack.supervisor"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
