"""The operator's view of VirtualMachineInstances, pure parts: what a VMI tells the core
(creation time, address), how few reads find them, how a restart's delete becomes an outcome,
and which instances a VM or VMI event wakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from cloudkit.api import names
from cloudkit.api.jobs import AAP_CAPABILITIES, JobReading, JobType, ProviderCapabilities
from cloudkit.lifecycle.types import FailureKind, RestartOutcome, RestartVirtualMachine
from cloudkit.operator.actions import execute
from cloudkit.operator.kube import KubeError
from cloudkit.operator.kube_objects import (
    InstanceKey,
    vm_observation,
    vmi_created_at,
    vmi_ip_address,
    vmi_lookups,
)
from cloudkit.operator.routing import Routes
from cloudkit.providers.base import CancelAnswer, DeprovisionResult, LaunchResult

LABEL = names.VM_INSTANCE_LABEL


def vm(namespace: str = "tenant", name: str = "ci-1", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "status": {
            "printableStatus": "Running" if ready else "Starting",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def vmi(created: str = "2026-03-01T10:00:05Z", *interfaces: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "tenant", "name": "ci-1", "creationTimestamp": created},
        "status": {"phase": "Running", "interfaces": list(interfaces)},
    }


# --- what a VMI tells the core ------------------------------------------------------------------


def test_observation_carries_the_vmi_creation_time_and_first_address() -> None:
    seen = vm_observation(vm(), vmi("2026-03-01T10:00:05Z", {"ipAddress": "10.200.3.4"}))
    assert seen.vmi_created_at == datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert seen.ip_address == "10.200.3.4"
    assert (seen.namespace, seen.name, seen.ready) == ("tenant", "ci-1", True)


def test_without_a_vmi_nothing_is_known() -> None:
    seen = vm_observation(vm(ready=False))
    assert seen.vmi_created_at is None and seen.ip_address is None
    assert seen.printable_status == "Starting" and not seen.ready


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ([], None),
        ([{"name": "default"}], None),  # booting: no address reported yet
        ([{"ipAddress": "10.0.0.1"}, {"ipAddress": "10.0.0.2"}], "10.0.0.1"),
        ([{"name": "a"}, {"ipAddress": "10.0.0.2"}], "10.0.0.2"),
        ([{"ipAddresses": ["fd00::1", "10.0.0.3"]}], "fd00::1"),
        (["junk", {"ipAddress": ""}, {"ipAddress": "10.0.0.4"}], "10.0.0.4"),
    ],
)
def test_first_address_in_interface_order(interfaces: list[Any], expected: str | None) -> None:
    assert vmi_ip_address(vmi("2026-03-01T10:00:05Z", *interfaces)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-01T10:00:05Z", datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)),
        ("2026-03-01T10:00:05.250+00:00", datetime(2026, 3, 1, 10, 0, 5, 250000, tzinfo=UTC)),
        ("2026-03-01T10:00:05", datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
    ],
)
def test_creation_time_is_aware_or_none(raw: str, expected: datetime | None) -> None:
    assert vmi_created_at(vmi(raw)) == expected


def test_one_lookup_per_namespace_listing_where_several_vms_share_it() -> None:
    lookups = vmi_lookups([("a", "vm-1"), ("b", "vm-2"), ("a", "vm-3")])
    assert lookups == {"a": ["vm-1", "vm-3"], "b": ["vm-2"]}


# --- a restart's delete becomes an outcome ------------------------------------------------------


class Vmis:
    """Deletes VMIs in memory, or fails as told."""

    def __init__(self, existing: set[tuple[str, str]], error: Exception | None = None) -> None:
        self.existing = existing
        self.error = error
        self.deleted: list[tuple[str, str]] = []

    async def delete_vmi(self, namespace: str, name: str) -> bool:
        if self.error is not None:
            raise self.error
        self.deleted.append((namespace, name))
        if (namespace, name) not in self.existing:
            return False
        self.existing.discard((namespace, name))
        return True


class NoJobs:
    """A restart never reaches the provider."""

    @property
    def name(self) -> str:
        return "test"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return AAP_CAPABILITIES

    async def trigger_provision(self, instance: Any, *, correlation_id: str) -> LaunchResult:
        raise AssertionError("launched")

    async def provision_status(self, job_id: str) -> JobReading:
        raise AssertionError("polled")

    async def trigger_deprovision(self, instance: Any, *, correlation_id: str) -> DeprovisionResult:
        raise AssertionError("launched")

    async def deprovision_status(self, job_id: str) -> JobReading:
        raise AssertionError("polled")

    async def cancel_job(self, job_id: str) -> CancelAnswer:
        raise AssertionError("canceled")

    async def find_job(
        self, job_type: JobType, correlation_id: str, *, since: datetime
    ) -> JobReading | None:
        raise AssertionError("looked up")

    async def close(self) -> None:
        pass


async def restart(vmis: Vmis) -> RestartOutcome:
    action = RestartVirtualMachine("tenant", "ci-1")
    outcome = await execute(NoJobs(), action, {"metadata": {}}, vms=vmis)
    assert isinstance(outcome, RestartOutcome)
    return outcome


async def test_restart_deletes_the_vms_vmi() -> None:
    vmis = Vmis({("tenant", "ci-1")})
    assert await restart(vmis) == RestartOutcome("tenant", "ci-1")
    assert vmis.deleted == [("tenant", "ci-1")] and not vmis.existing


async def test_a_missing_vmi_is_missing_not_a_failure() -> None:
    assert await restart(Vmis(set())) == RestartOutcome("tenant", "ci-1", missing=True)


def refused(status: int, headers: dict[str, str] | None = None) -> KubeError:
    error = ApiException(status=status, reason="Refused")
    error.headers = headers  # type: ignore[assignment]  # what the client reads: a mapping
    error.body = b'{"kind":"Status","message":"virtualmachineinstances is forbidden"}'
    return KubeError("deleting VirtualMachineInstance tenant/ci-1", error)


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (refused(403), FailureKind.NOT_ALLOWED, False),
        (refused(422), FailureKind.NOT_ALLOWED, False),
        (refused(401), FailureKind.UNAUTHORIZED, True),
        (refused(500), FailureKind.UNAVAILABLE, True),
        (refused(503), FailureKind.UNAVAILABLE, True),
        (aiohttp.ClientConnectionError("refused"), FailureKind.UNAVAILABLE, True),
        (TimeoutError(), FailureKind.UNAVAILABLE, True),
    ],
)
async def test_a_failed_delete_is_a_failure_of_its_kind(
    error: Exception, kind: FailureKind, retryable: bool
) -> None:
    outcome = await restart(Vmis({("tenant", "ci-1")}, error))
    assert outcome.failure is not None and not outcome.missing
    assert (outcome.failure.kind, outcome.failure.retryable) == (kind, retryable)
    assert "tenant/ci-1" in outcome.failure.message


async def test_a_refusal_says_why_and_a_throttle_when_to_retry() -> None:
    forbidden = await restart(Vmis(set(), refused(403)))
    assert forbidden.failure is not None
    assert forbidden.failure.message == (
        "deleting VirtualMachineInstance tenant/ci-1: 403 virtualmachineinstances is forbidden"
    )
    throttled = await restart(Vmis(set(), refused(429, {"Retry-After": "7"})))
    assert throttled.failure is not None
    assert throttled.failure.kind is FailureKind.RATE_LIMITED
    assert throttled.failure.retry_after == timedelta(seconds=7)


# --- which instances an event wakes -------------------------------------------------------------


def test_a_vm_wakes_its_instance_in_every_namespace_that_has_one() -> None:
    routes = Routes()
    routes.instance_event("team-a", "ci-1", deleted=False)
    routes.instance_event("team-b", "ci-1", deleted=False)
    routes.instance_event("team-a", "other", deleted=False)
    woken = routes.vm_event("tenant", "ci-1", {LABEL: "ci-1"}, deleted=False)
    assert woken == [InstanceKey("team-a", "ci-1"), InstanceKey("team-b", "ci-1")]
    routes.instance_event("team-b", "ci-1", deleted=True)
    assert routes.vm_event("tenant", "ci-1", {LABEL: "ci-1"}, deleted=False) == [
        InstanceKey("team-a", "ci-1")
    ]
    assert routes.vm_event("tenant", "x", {}, deleted=False) == []


def test_a_vmi_wakes_the_instance_on_its_label() -> None:
    routes = Routes()
    routes.instance_event("team-a", "ci-1", deleted=False)
    assert routes.vmi_event("tenant", "anything", {LABEL: "ci-1"}) == [
        InstanceKey("team-a", "ci-1")
    ]


def test_an_unlabelled_vmi_is_traced_through_the_vm_named_alike() -> None:
    routes = Routes()
    routes.instance_event("team-a", "ci-1", deleted=False)
    assert routes.vmi_event("tenant", "vm-x", {}) == []  # its VM not seen yet
    routes.vm_event("tenant", "vm-x", {LABEL: "ci-1"}, deleted=False)
    assert routes.vmi_event("tenant", "vm-x", {}) == [InstanceKey("team-a", "ci-1")]
    assert routes.vmi_event("elsewhere", "vm-x", {}) == []  # same name, other namespace
    routes.vm_event("tenant", "vm-x", {LABEL: "ci-1"}, deleted=True)
    assert routes.vmi_event("tenant", "vm-x", {}) == []


def test_a_single_watched_namespace_needs_no_bookkeeping() -> None:
    routes = Routes("cloudkit-computeinstance")
    assert routes.instance_event("elsewhere", "ci-1", deleted=False) is None
    assert routes.vmi_event("tenant", "ci-1", {LABEL: "ci-1"}) == [
        InstanceKey("cloudkit-computeinstance", "ci-1")
    ]
