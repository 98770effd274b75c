"""What a reconcile pass reads fresh, and when (reconcile.Freshness), and how it reports a spec
that does not parse (invalid_spec.py): the pure inputs of a pass, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cloudkit.api.models import ComputeInstance
from cloudkit.operator.cache import json_copy
from cloudkit.operator.invalid_spec import INVALID_REASON, rejected_status, validation_summary
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.reconcile import End, Freshness, InstanceModels

NOW = datetime(2026, 3, 1, 10, 0, 5, 123456, tzinfo=UTC)


def test_without_a_cache_every_read_is_fresh_and_with_one_none_is() -> None:
    assert Freshness.first(caching=False).complete
    cached = Freshness.first(caching=True)
    assert not cached.instance and not cached.vms and not cached.relist_vms


def test_a_write_conflict_re_reads_the_instance_only() -> None:
    """The VMs the outcomes so far were obtained on are kept: only the instance changed."""
    after = Freshness.first(caching=True).after(End.CHANGED)
    assert after.instance and not after.vms and not after.relist_vms
    assert not after.complete


def test_a_decision_that_acts_on_reads_re_reads_the_instance_and_its_vms() -> None:
    """Removing the finalizer or deleting a VMI is decided on fresh reads of both, even when
    the pass has outcomes already (else it would keep the cached VMs)."""
    for before in (Freshness.first(caching=True), Freshness(instance=True, vms=False)):
        after = before.after(End.STALE)
        assert after.complete and after.relist_vms


def test_only_a_conflict_and_stale_reads_start_the_pass_over() -> None:
    assert {end for end in End if end.starts_over} == {End.CHANGED, End.STALE}


def invalid(**spec: object) -> ValidationError:
    raw = {"metadata": {"name": "ci-1", "namespace": "ns"}, "spec": spec}
    with pytest.raises(ValidationError) as caught:
        ComputeInstance.model_validate(raw)
    return caught.value


def test_an_invalid_spec_is_reported_by_field_once() -> None:
    problem = validation_summary(invalid(cores="many"))
    assert "spec.cores" in problem
    raw = {"metadata": {}, "status": {"conditions": [{"type": "Available", "status": "False"}]}}
    status = rejected_status(raw, problem, NOW)
    assert status is not None
    assert status["conditions"] == [
        {"type": "Available", "status": "False"},
        {
            "type": "Accepted",
            "status": "False",
            "reason": INVALID_REASON,
            "message": problem,
            "lastTransitionTime": "2026-03-01T10:00:05Z",
        },
    ]
    assert rejected_status({**raw, "status": status}, problem, NOW) is None
    assert rejected_status({**raw, "status": status}, "another problem", NOW) is not None


def test_a_version_is_validated_once_and_a_new_version_again() -> None:
    key = InstanceKey("ns", "ci-1")
    models = InstanceModels()
    raw = {
        "metadata": {"name": "ci-1", "namespace": "ns", "resourceVersion": "7"},
        "spec": {"templateID": "t"},
    }
    first = models.of(key, raw)
    assert models.of(key, json_copy(raw)) is first  # the same version: the same model
    newer = {
        **raw,
        "metadata": {**raw["metadata"], "resourceVersion": "8"},
        "spec": {"templateID": "t", "cores": 4},
    }
    assert models.of(key, newer).spec.cores == 4
    unversioned = {
        **raw,
        "metadata": {"name": "ci-1", "namespace": "ns"},
        "spec": {"templateID": "t", "cores": 2},
    }
    assert models.of(key, unversioned).spec.cores == 2  # no version: always validated
    models.forget(key)
    assert models.of(key, raw) is not first
