"""Leader election's decisions, rule by rule as client-go's leaderelection behaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloudkit.operator.leadership import (
    LEASE_DURATION_S,
    RENEW_DEADLINE_S,
    RETRY_PERIOD_S,
    LeaseRecord,
    Move,
    default_identity,
    default_namespace,
    expired,
    lost,
    micro_time,
    next_step,
    observe,
    released,
    validate_timings,
)

ME, OTHER = "me_1", "other_2"
WALL = datetime(2026, 11, 30, 1, 0, 0, 123456, tzinfo=UTC)
STAMP = "2026-11-30T01:00:00.123456Z"


def held_by(holder: str, **fields: object) -> LeaseRecord:
    base = {
        "holder": holder,
        "lease_duration_s": 15,
        "acquire_time": "2026-11-30T00:00:00.000000Z",
        "renew_time": "2026-11-30T00:59:58.000000Z",
        "transitions": 3,
    }
    base.update(fields)
    return LeaseRecord(**base)  # type: ignore[arg-type]


def test_defaults_are_controller_runtimes() -> None:
    assert (LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S) == (15.0, 10.0, 2.0)


def test_no_lease_is_created_with_us_holding_it() -> None:
    step = next_step(None, identity=ME, now=100.0, wall=WALL)
    assert step.move is Move.CREATE
    assert step.record == LeaseRecord(ME, 15, STAMP, STAMP, 0)


def test_another_holder_seen_just_now_is_waited_on() -> None:
    seen = observe(None, held_by(OTHER), now=100.0)
    assert next_step(seen, identity=ME, now=100.0, wall=WALL).move is Move.WAIT
    assert next_step(seen, identity=ME, now=114.9, wall=WALL).move is Move.WAIT


def test_a_record_unchanged_for_its_lease_duration_is_taken_with_one_more_transition() -> None:
    seen = observe(None, held_by(OTHER), now=100.0)
    step = next_step(seen, identity=ME, now=115.0, wall=WALL)
    assert step.move is Move.ACQUIRE
    assert step.record == LeaseRecord(ME, 15, STAMP, STAMP, 4)


def test_the_observer_times_the_record_on_its_own_clock_never_by_renew_time() -> None:
    # renewTime an hour old (another host's clock is behind): still valid, as just seen change.
    stale_clock = held_by(OTHER, renew_time="2026-11-30T00:00:00.000000Z")
    assert next_step(observe(None, stale_clock, 100.0), identity=ME, now=101.0, wall=WALL).move is (
        Move.WAIT
    )
    # renewTime in our future (its clock is ahead): expired once unchanged for the duration.
    ahead = held_by(OTHER, renew_time="2027-01-01T00:00:00.000000Z")
    seen = observe(None, ahead, 100.0)
    assert next_step(seen, identity=ME, now=115.0, wall=WALL).move is Move.ACQUIRE


def test_a_renewal_seen_restarts_the_observers_timer() -> None:
    seen = observe(None, held_by(OTHER), now=100.0)
    renewed = observe(seen, held_by(OTHER, renew_time="2026-11-30T01:00:10.000000Z"), now=110.0)
    assert renewed.changed_at == 110.0
    assert next_step(renewed, identity=ME, now=120.0, wall=WALL).move is Move.WAIT
    unchanged = observe(renewed, held_by(OTHER, renew_time="2026-11-30T01:00:10.000000Z"), 124.0)
    assert unchanged.changed_at == 110.0, "an unchanged record keeps when it was first seen"
    assert expired(unchanged, 125.0)


def test_the_lease_duration_the_holder_wrote_is_the_one_waited() -> None:
    seen = observe(None, held_by(OTHER, lease_duration_s=60), now=100.0)
    assert next_step(seen, identity=ME, now=115.0, wall=WALL).move is Move.WAIT
    assert next_step(seen, identity=ME, now=160.0, wall=WALL).move is Move.ACQUIRE


def test_a_released_lease_is_taken_at_once() -> None:
    free = released(held_by(OTHER), WALL)
    seen = observe(None, free, now=100.0)
    step = next_step(seen, identity=ME, now=100.0, wall=WALL)
    assert step.move is Move.ACQUIRE
    assert step.record is not None and step.record.transitions == 4


def test_our_own_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    mine = held_by(ME, lease_duration_s=15)
    step = next_step(observe(None, mine, 100.0), identity=ME, now=200.0, wall=WALL)
    assert step.move is Move.RENEW
    assert step.record == LeaseRecord(ME, 15, mine.acquire_time, STAMP, 3)


def test_release_empties_the_holder_with_a_one_second_lease_keeping_transitions() -> None:
    free = released(held_by(ME), WALL)
    assert (free.holder, free.lease_duration_s, free.transitions) == ("", 1, 3)
    assert free.renew_time == STAMP and free.acquire_time == STAMP


def test_a_leader_has_lost_once_the_renew_deadline_passed_without_renewal() -> None:
    assert not lost(last_renewed=100.0, now=109.99)
    assert lost(last_renewed=100.0, now=110.0)
    assert lost(last_renewed=100.0, now=103.0, renew_deadline_s=3.0)


def test_timings_are_checked_as_client_go_checks_them() -> None:
    assert validate_timings(15, 10, 2) == []
    assert validate_timings(10, 10, 2) == [
        "the lease duration must be longer than the renew deadline"
    ]
    assert validate_timings(15, 2.4, 2) == [
        "the renew deadline must be longer than 1.2 × the retry period"
    ]


def test_spec_round_trip_and_garbage_tolerated() -> None:
    record = held_by(OTHER)
    assert LeaseRecord.from_spec(record.to_spec()) == record
    odd = LeaseRecord.from_spec({"holderIdentity": None, "leaseDurationSeconds": "x"})
    assert (odd.holder, odd.lease_duration_s, odd.transitions) == ("", 1, 0)
    assert LeaseRecord.from_spec(None) == LeaseRecord(lease_duration_s=1)


def test_micro_time_is_utc_with_microseconds() -> None:
    later = WALL.astimezone(UTC) + timedelta(hours=2)
    assert micro_time(later.astimezone()) == "2026-11-30T03:00:00.123456Z"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "op-7d9", "HOSTNAME": "h"}, "op-7d9"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "op-5c4"}, "op-5c4"),
        ({"POD_NAME": "given"}, "given"),
    ],
)
def test_identity_is_the_pod_name_in_a_cluster(environ: dict[str, str], expected: str) -> None:
    assert default_identity(environ) == expected


def test_identity_elsewhere_is_host_and_pid() -> None:
    import os
    import socket

    # HOSTNAME outside a cluster is the machine's, shared by every process on it: not used.
    assert default_identity({"HOSTNAME": "box"}) == f"{socket.gethostname()}_{os.getpid()}"


def test_namespace_from_the_in_cluster_file_else_the_deploy_default(tmp_path: Path) -> None:
    file = tmp_path / "namespace"
    file.write_text("ops\n")
    assert default_namespace(file) == "ops"
    assert default_namespace(tmp_path / "absent") == "cloudkit-operator-system"
