"""Instances the operator will never see: ComputeInstances outside the watched namespace.

The operator reconciles only CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE, as upstream's deployment
does, so an instance created in another namespace would wait forever in silence. `cloudkit up`
watches every namespace and reports each such instance once, where a person looks: a warning
on the stack's console and a Warning Event on the instance (`kubectl describe ci NAME`,
`kubectl get events`), both naming the namespace to use (docs/decisions.md, "Instances
outside the watched namespace").

Names and namespaces are Kubernetes names (the API server validated them); they are only
ever placed in messages, never rendered or run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from cloudkit.api import names
from cloudkit.api.events import instance_event
from cloudkit.local.stack.kube import (
    KubeClient,
    KubeError,
    WatchEvent,
    follower,
    list_version,
    resource_path,
)
from cloudkit.watching import Cursor, follow

log = logging.getLogger("cloudkit.local.stack")

REASON = "NotWatched"
COMPONENT = "cloudkit-up"
INSTANCES = resource_path(names.GROUP, names.VERSION, names.PLURAL)
TRANSIENT = (KubeError, aiohttp.ClientError, OSError, TimeoutError, ValueError)
"""What the stray watch rides out (ValueError: a line cut short by a stopping server)."""


def stray_message(namespace: str, watched: str) -> str:
    """What the Event and the console say about an instance in `namespace`."""
    return (
        f"The operator watches only namespace {watched}; this instance in {namespace} will "
        f"not be provisioned. Delete it and create it in {watched} (the local kubeconfig's "
        f"default namespace)."
    )


def stray_event(instance: dict[str, Any], watched: str) -> dict[str, Any]:
    """The core/v1 Warning Event that tells the instance's owner why nothing happens."""
    return instance_event(
        instance["metadata"],
        reason=REASON,
        message=stray_message(instance["metadata"]["namespace"], watched),
        type_="Warning",
        component=COMPONENT,
    )


async def report_strays(
    kubeconfig: Path, watched: str, warn: Callable[[str], None] = log.warning
) -> None:
    """Follow ComputeInstances in every namespace until cancelled; report each stray once."""
    reported: set[str] = set()
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:

        async def relist() -> str | None:
            listing = await kube.list_objects(INSTANCES)
            for instance in listing.get("items") or []:
                await _check(kube, instance, watched, warn, reported)
            return list_version(listing)

        async def on_event(event: WatchEvent) -> None:
            kind, instance = event
            if kind == "ADDED":
                await _check(kube, instance, watched, warn, reported)

        # The stack supervises the API server; until it stops us, keep trying.
        cursor = Cursor("ComputeInstances outside the watched namespace", transient=TRANSIENT)
        await follow(follower(kube, INSTANCES, relist=relist, on_event=on_event), cursor)


async def _check(
    kube: KubeClient,
    instance: dict[str, Any],
    watched: str,
    warn: Callable[[str], None],
    reported: set[str],
) -> None:
    metadata = instance.get("metadata") or {}
    namespace, uid = metadata.get("namespace"), str(metadata.get("uid", ""))
    if namespace in (None, watched) or uid in reported or metadata.get("deletionTimestamp"):
        return
    reported.add(uid)
    warn(f"ComputeInstance {namespace}/{metadata.get('name')}: {stray_message(namespace, watched)}")
    event = stray_event(instance, watched)
    await kube.create(resource_path("", "v1", "events", namespace=namespace), event)
