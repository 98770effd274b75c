"""A reconciler driven pass by pass in the test's own process, against a local stack (AAP direct,
simulated job templates, no operator process) that a module's tests share: each test chooses the
moment of every pass, so counts of requests and writes are exact, not timing-dependent. It runs
under the operator's ServiceAccount, as the operator does."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.environment import aap_operator_env
from cloudkit.local.stack.kube import KubeClient
from cloudkit.local.stack.operator_account import prepare_operator_kubeconfig
from cloudkit.operator.cache import WatchCache
from cloudkit.operator.kube import Kube
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.reconcile import Reconciler
from cloudkit.operator.settings import load_settings
from cloudkit.operator.startup import build_provider, lifecycle_config


@dataclass
class InProcess:
    stack: StackHandle
    kube: KubeClient
    """An admin client: the test's own reads and writes (not counted)."""
    reconciler: Reconciler
    requests: Counter[str]
    """The reconciler's Kubernetes requests, by verb."""
    kubeconfig: Path
    """The operator's ServiceAccount kubeconfig."""


@dataclass
class ReconcilerStack:
    """A stack without an operator, and the operator's ServiceAccount kubeconfig for it."""

    stack: StackHandle
    kubeconfig: Path


@asynccontextmanager
async def reconciler_stack(state_dir: Path) -> AsyncIterator[ReconcilerStack]:
    """The stack the in-process reconcilers of a module share (each test its own instances):
    AAP direct with simulated jobs, no job notifications (the test drives every pass)."""
    stack = await start_stack(
        provider="aap",
        state_dir=state_dir / "state",
        vm_boot_seconds=0.2,
        with_operator=False,
        job_notifications=False,
        simulated_jobs={"run_seconds": 0.3},
        with_fulfillment=False,
    )
    try:
        kubeconfig = await prepare_operator_kubeconfig(
            stack.kubeconfig, state_dir / "operator-kubeconfig"
        )
        yield ReconcilerStack(stack, kubeconfig)
    finally:
        await stack.stop()


@asynccontextmanager
async def in_process_reconciler(
    shared: ReconcilerStack, *, cache: WatchCache | None = None
) -> AsyncIterator[InProcess]:
    """A reconciler of its own (its request counts start at zero) over a shared stack; `cache`
    None: every read is a fresh GET."""
    stack, kubeconfig = shared.stack, shared.kubeconfig
    requests: Counter[str] = Counter()
    settings = load_settings(
        {
            "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
            **aap_operator_env(stack.automation_url, stack.automation_token_file),
            "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": INSTANCE_NAMESPACE,
        }
    )
    counted = await Kube.connect(kubeconfig, on_request=lambda verb: requests.update([verb]))
    reconciler = Reconciler(
        counted,
        build_provider(settings),
        lifecycle_config(settings),
        OperatorMetrics(CollectorRegistry()),
        cache=cache,
    )
    try:
        async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
            yield InProcess(stack, kube, reconciler, requests, kubeconfig)
    finally:
        await reconciler.provider.close()
        await counted.close()
