"""deep_copy: equal to the original, and no edit of the copy reaches the original."""

from __future__ import annotations

import copy
from typing import Any

from cloudkit.api.copies import deep_copy
from cloudkit.api.models import ComputeInstance, JobRecord
from tests.unit.api.test_models import FULL


def _full() -> ComputeInstance:
    raw: dict[str, Any] = copy.deepcopy(FULL)
    # An unknown field (kept: extra="allow") holding a mutable value.
    raw["status"]["futureField"] = {"items": [{"name": "a"}]}
    return ComputeInstance.model_validate(raw)


def test_a_copy_is_equal_and_a_separate_object_at_every_mutable_level() -> None:
    original = _full()
    clone = deep_copy(original)
    assert clone.to_wire() == original.to_wire()
    assert clone.model_fields_set == original.model_fields_set
    assert clone.status is not original.status
    assert clone.status.conditions is not original.status.conditions
    assert clone.status.conditions[0] is not original.status.conditions[0]
    assert clone.status.provision_job is not original.status.provision_job
    assert clone.status.jobs[0] is not original.status.jobs[0]
    assert clone.metadata.labels is not original.metadata.labels
    assert clone.status.model_extra is not original.status.model_extra


def test_editing_the_copy_leaves_the_original_as_it_was() -> None:
    original = _full()
    before = original.to_wire()
    clone = deep_copy(original)
    status = clone.status
    status.conditions[0].status = "False"
    status.conditions.append(status.conditions[0].model_copy())
    assert status.provision_job is not None
    status.provision_job.message = "edited"
    status.jobs[0].message = "edited"
    status.jobs.append(JobRecord.model_validate(FULL["status"]["jobs"][0]))
    clone.metadata.labels["new"] = "label"
    clone.metadata.finalizers.clear()
    assert status.model_extra is not None
    status.model_extra["futureField"]["items"][0]["name"] = "edited"
    clone.spec.additional_disks = None
    assert original.to_wire() == before
