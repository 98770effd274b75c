"""A reconciler driven pass by pass in the test's own process, against a local stack (AAP direct,
simulated job templates, no operator process): each test chooses the moment of every pass, so
counts of requests and writes are exact, not timing-dependent. It runs under the operator's
ServiceAccount, as the operator does."""

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


@asynccontextmanager
async def in_process_reconciler(
    tmp_path: Path, *, cache: WatchCache | None = None
) -> AsyncIterator[InProcess]:
    """A stack and a reconciler over it; `cache` None: every read is a fresh GET."""
    stack = await start_stack(
        provider="aap",
        state_dir=tmp_path / "state",
        vm_boot_seconds=0.2,
        with_operator=False,
        job_notifications=False,
        simulated_jobs={"run_seconds": 0.3},
        with_fulfillment=False,
    )
    requests: Counter[str] = Counter()
    try:
        kubeconfig = await prepare_operator_kubeconfig(
            stack.kubeconfig, tmp_path / "operator-kubeconfig"
        )
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
        async with KubeClient.from_kubeconfig(stack.kubeconfig) as kube:
            try:
                yield InProcess(stack, kube, reconciler, requests, kubeconfig)
            finally:
                await reconciler.provider.close()
                await counted.close()
    finally:
        await stack.stop()
