"""The poll-policy comparison's pure parts: the interleaving plan, a lifecycle's backend time
from AWX job records (a job not found or not successful fails it), failed lifecycles kept out
of the figures, and the ratio per round with its spread over rounds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudkit.bench.baseline import (
    OURS,
    UPSTREAM,
    Backend,
    Lifecycle,
    Round,
    Stamps,
    backend_seconds,
    difference,
    figures,
    job_records,
    judge,
    plan,
    predicted_round_s,
    provisions_running,
    ratio,
    spread,
)

NS = "cloudkit-computeinstance"


def test_the_plan_gives_every_size_its_rounds_in_order() -> None:
    rounds = plan([1, 10, 50], 3)
    assert [(r.n, r.index) for r in rounds] == [(n, i) for n in (1, 10, 50) for i in (1, 2, 3)]
    with pytest.raises(ValueError, match="rounds"):
        plan([1], 0)
    with pytest.raises(ValueError, match="sizes"):
        plan([0], 3)


def test_a_round_alternates_the_policies_and_the_first_one_alternates_by_round() -> None:
    first, second = Round(3, 1).instances(), Round(3, 2).instances()
    assert [p for p, _ in first] == [OURS, UPSTREAM] * 3
    assert [p for p, _ in second] == [UPSTREAM, OURS] * 3
    # n of each, every name distinct (across policies too: a VM's label is the bare name)
    names = [name for _, name in first + second]
    assert len(set(names)) == len(names) == 12
    assert sum(1 for p, _ in first if p == OURS) == 3


def job(
    id: int,
    name: str,
    template: str,
    status: str = "successful",
    created: str = "2026-01-01T00:00:00Z",
    finished: str | None = "2026-01-01T00:00:10.5Z",
    namespace: str = NS,
) -> dict[str, Any]:
    payload = {"metadata": {"name": name, "namespace": namespace}}
    return {
        "id": id,
        "name": template,
        "status": status,
        "created": created,
        "finished": finished,
        "extra_vars": json.dumps({"ansible_eda": {"event": {"payload": payload}}}),
    }


PROVISION = "cloudkit-provision-compute-instance"
DEPROVISION = "cloudkit-deprovision-compute-instance"


def test_backend_time_is_both_jobs_created_to_finished() -> None:
    records = job_records(
        [
            job(1, "a", PROVISION),
            job(2, "a", DEPROVISION, finished="2026-01-01T00:00:04Z"),
            job(3, "a", PROVISION, namespace="other"),  # same name, other namespace
            {"id": 4, "name": "unrelated", "status": "successful", "extra_vars": "{}"},
        ]
    )
    assert backend_seconds(records, NS, "a") == Backend(10.5, 4.0)
    assert [r.kind for r in records] == ["provision", "deprovision", "provision"]


@pytest.mark.parametrize(
    ("jobs", "reason"),
    [
        ([job(2, "a", DEPROVISION)], "no provision job found"),
        ([job(1, "a", PROVISION)], "no deprovision job found"),
        ([job(1, "a", PROVISION, namespace="other"), job(2, "a", DEPROVISION)], "no provision"),
        ([job(1, "a", PROVISION, "failed"), job(2, "a", DEPROVISION)], "provision job 1 failed"),
        (
            [job(1, "a", PROVISION), job(2, "a", DEPROVISION, "running", finished=None)],
            "deprovision job 2 running",
        ),
        # the latest job of a kind counts: a later failed one fails the lifecycle
        (
            [job(1, "a", PROVISION), job(3, "a", PROVISION, "error"), job(2, "a", DEPROVISION)],
            "provision job 3 error",
        ),
    ],
)
def test_a_job_not_found_or_not_successful_is_a_reason_not_zero_seconds(
    jobs: list[dict[str, Any]], reason: str
) -> None:
    found = backend_seconds(job_records(jobs), NS, "a")
    assert isinstance(found, str) and found.startswith(reason)


JOBS = Backend(11.0, 9.0)
COMPLETE = Stamps(created=0.0, ready=12.0, deleted=20.0, gone=30.0)


def test_a_complete_lifecycle_has_its_figures() -> None:
    done = judge(OURS, "a", COMPLETE, Backend(11.0, 9.0))
    assert done.ok
    assert (done.provision_s, done.deprovision_s, done.cycle_s) == (12.0, 10.0, 22.0)
    assert done.overhead_s == pytest.approx(2.0)
    assert figures([done])["provision_overhead_s_mean"] == pytest.approx(1.0)
    assert figures([done])["deprovision_overhead_s_mean"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("stamps", "backend", "reason"),
    [
        (COMPLETE, "no provision job found", "no provision job found"),
        (COMPLETE, "deprovision job 7 failed", "deprovision job 7 failed"),
        (Stamps(created=0.0, deleted=20.0, gone=30.0), JOBS, "not Ready"),
        (Stamps(created=0.0, ready=12.0, deleted=20.0), JOBS, "not gone"),
        (Stamps(created=0.0, failed="boom", deleted=1.0, gone=2.0), JOBS, "phase Failed: boom"),
        (Stamps(refused="create refused: 403 Forbidden"), "no provision job found", "create"),
    ],
)
def test_a_failed_lifecycle_is_named_with_its_first_reason(
    stamps: Stamps, backend: Backend | str, reason: str
) -> None:
    failed = judge(UPSTREAM, "a", stamps, backend)
    assert not failed.ok and failed.error.startswith(reason)


def test_failed_lifecycles_are_counted_and_named_never_averaged() -> None:
    rows = [
        Lifecycle(OURS, "a", provision_s=10.0, deprovision_s=10.0, provision_job_s=18.0),
        Lifecycle(OURS, "b", provision_s=20.0, deprovision_s=10.0, deprovision_job_s=26.0),
        Lifecycle(OURS, "c", error="no deprovision job found"),
    ]
    out = figures(rows)
    assert out["lifecycles"] == 3 and out["failed"] == 1
    assert out["failed_lifecycles"] == {"c": "no deprovision job found"}
    # (2 + 4) / 2: the failed one is not a 0 s backend nor a 0 s cycle
    assert out["overhead_s_mean"] == pytest.approx(3.0)
    assert out["cycle_s_mean"] == pytest.approx(25.0)
    assert out["overhead_s_max"] == pytest.approx(4.0)
    assert out["overhead_ratio"] == pytest.approx(3.0 / 25.0, abs=1e-4)
    nothing = figures([Lifecycle(OURS, "c", error="x")])
    assert nothing["failed"] == 1 and "overhead_s_mean" not in nothing


def test_the_ratio_is_upstream_over_ours_per_round() -> None:
    assert ratio({"overhead_s_mean": 15.0}, {"overhead_s_mean": 2.0}) == 7.5
    assert ratio({"overhead_s_mean": 15.0}, {"overhead_s_mean": 0.0}) == 15000.0  # floored
    assert ratio({"overhead_s_mean": 15.0}, {}) is None
    assert ratio({}, {"overhead_s_mean": 2.0}) is None
    assert difference({"overhead_s_mean": 15.0}, {"overhead_s_mean": 2.5}) == 12.5
    assert difference({"overhead_s_mean": -0.5}, {"overhead_s_mean": 0.25}) == -0.75
    assert difference({}, {"overhead_s_mean": 2.0}) is None


def test_the_spread_is_min_median_max_of_the_rounds_that_have_a_ratio() -> None:
    assert spread([9.0, 6.5, None, 7.0]) == {"min": 6.5, "median": 7.0, "max": 9.0}
    assert spread([3.0, 1.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
    assert spread([None]) is None


def test_deletion_waits_for_provision_jobs_the_automation_has_not_finished() -> None:
    records = job_records(
        [
            job(1, "a", PROVISION, "running", finished=None),
            job(2, "b", PROVISION),
            job(3, "c", PROVISION, finished=None, namespace="other"),
            job(4, "b", DEPROVISION, "running", finished=None),  # not a provision job
            job(5, "d", PROVISION, "failed", finished=None),
            job(6, "d", PROVISION),  # the latest counts
        ]
    )
    wanted = [(NS, "a"), (NS, "b"), ("other", "c"), (NS, "d"), (NS, "never-launched")]
    assert provisions_running(records, wanted) == [(NS, "a"), ("other", "c")]


def test_a_round_is_predicted_from_the_largest_size_measured_scaled_by_n() -> None:
    durations = {1: [100.0, 130.0], 10: [400.0, 500.0, 450.0]}
    assert predicted_round_s(durations, 50) == pytest.approx(2500.0)  # the longest 10, × 5
    assert predicted_round_s(durations, 10) == pytest.approx(500.0)
    assert predicted_round_s(durations, 5) == pytest.approx(650.0)  # from N = 1
    assert predicted_round_s({}, 50) is None
    assert predicted_round_s({10: [400.0]}, 1) is None  # never scaled down
