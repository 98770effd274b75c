"""Work-queue semantics: dedup, earliest due time wins, one worker per key, bounded concurrency,
requeue from the result, backoff on errors. Real asyncio with short delays; every wait has a
deadline."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from cloudkit.operator.workqueue import LOW_TURN, Priority, WorkQueue

DEADLINE = 5.0


class Recorder:
    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.runs: list[tuple[str, float]] = []
        self.active: Counter[str] = Counter()
        self.max_active_per_key = 0
        self.max_active = 0
        self.delays: dict[str, list[float | None]] = {}
        self.fail: dict[str, int] = {}
        self.changed = asyncio.Event()

    async def __call__(self, key: str) -> float | None:
        self.active[key] += 1
        self.max_active_per_key = max(self.max_active_per_key, self.active[key])
        self.max_active = max(self.max_active, sum(self.active.values()))
        try:
            self.runs.append((key, asyncio.get_running_loop().time()))
            self.changed.set()
            await asyncio.sleep(self.hold)
            if self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                raise RuntimeError("boom")
            queue = self.delays.get(key)
            return queue.pop(0) if queue else None
        finally:
            self.active[key] -= 1

    def count(self, key: str) -> int:
        return sum(1 for k, _ in self.runs if k == key)

    async def wait_runs(self, key: str, n: int) -> None:
        async def until() -> None:
            while self.count(key) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), DEADLINE)


@pytest.fixture
async def make_queue():  # type: ignore[no-untyped-def]
    queues: list[WorkQueue[str]] = []

    def make(recorder: Recorder, **kwargs: float) -> WorkQueue[str]:
        queue: WorkQueue[str] = WorkQueue(recorder, **kwargs)  # type: ignore[arg-type]
        queues.append(queue)
        queue.start()
        return queue

    yield make
    for queue in queues:
        await queue.stop()


async def test_duplicate_adds_run_once(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    queue = make_queue(recorder, workers=2)
    for _ in range(5):
        queue.add("a", 0.05)
    assert len(queue) == 1
    await recorder.wait_runs("a", 1)
    await asyncio.sleep(0.1)  # would be a second run if the adds were not merged
    assert recorder.count("a") == 1


async def test_earliest_due_time_wins(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    queue = make_queue(recorder)
    queue.add("a", 10.0)
    queue.add("a", 0.05)
    queue.add("a", 5.0)  # later than the queued time: ignored
    due = queue.due_in("a")
    assert due is not None and due < 0.1
    await recorder.wait_runs("a", 1)


async def test_delayed_key_waits(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    queue = make_queue(recorder)
    loop = asyncio.get_running_loop()
    added = loop.time()
    queue.add("a", 0.2)
    queue.add("b")
    await recorder.wait_runs("a", 1)
    ran_at = dict(recorder.runs)
    assert ran_at["b"] < ran_at["a"]
    assert ran_at["a"] - added >= 0.19


async def test_a_key_is_never_processed_twice_at_once(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder(hold=0.1)
    queue = make_queue(recorder, workers=4)
    queue.add("a")
    await recorder.wait_runs("a", 1)
    for _ in range(3):
        queue.add("a")  # parked while "a" runs
    await recorder.wait_runs("a", 2)
    await asyncio.sleep(0.15)
    assert recorder.max_active_per_key == 1
    assert recorder.count("a") == 2  # the parked adds became one more run


async def test_concurrency_is_bounded(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder(hold=0.05)
    queue = make_queue(recorder, workers=3)
    for n in range(10):
        queue.add(f"k{n}")
    for n in range(10):
        await recorder.wait_runs(f"k{n}", 1)
    assert recorder.max_active == 3


async def test_result_requeues_the_key(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    recorder.delays["a"] = [0.05, 0.05, None]
    queue = make_queue(recorder)
    queue.add("a")
    await recorder.wait_runs("a", 3)
    await asyncio.sleep(0.1)
    assert recorder.count("a") == 3
    assert queue.due_in("a") is None


async def test_requeue_keeps_an_earlier_wakeup(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder(hold=0.1)
    recorder.delays["a"] = [30.0]
    queue = make_queue(recorder)
    queue.add("a")
    await recorder.wait_runs("a", 1)
    queue.add("a", 0.05)  # a notification during processing: earlier than the 30 s requeue
    await recorder.wait_runs("a", 2)


async def test_errors_back_off_then_succeed(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    recorder.fail["a"] = 2
    queue = make_queue(recorder, error_backoff_min=0.05, error_backoff_max=0.2)
    queue.add("a")
    await recorder.wait_runs("a", 3)
    times = [t for k, t in recorder.runs if k == "a"]
    assert times[1] - times[0] >= 0.04
    assert times[2] - times[1] >= 0.09  # doubled


async def test_stop_ends_workers_and_ignores_adds(make_queue) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder(hold=10.0)
    queue = make_queue(recorder)
    queue.add("a")
    await recorder.wait_runs("a", 1)
    await asyncio.wait_for(queue.stop(), DEADLINE)
    queue.add("b")
    assert len(queue) == 0


async def test_stop_with_grace_lets_the_reconcile_in_flight_finish_and_starts_no_other() -> None:
    started: list[str] = []
    finished: list[str] = []
    running = asyncio.Event()

    async def step(key: str) -> None:
        started.append(key)
        running.set()
        await asyncio.sleep(0.3)  # the step in progress (a real pass takes this long)
        finished.append(key)

    queue: WorkQueue[str] = WorkQueue(step, workers=1)
    queue.start()
    queue.add("a")
    queue.add("b")
    await asyncio.wait_for(running.wait(), DEADLINE)
    await asyncio.wait_for(queue.stop(grace=DEADLINE), DEADLINE)
    assert finished == ["a"], "the step in progress ran to its end"
    assert started == ["a"], "nothing new was taken once stopping"


async def test_stop_without_grace_cancels_the_reconcile_in_flight() -> None:
    recorder = Recorder(hold=30)
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    queue.start()
    queue.add("a")
    await recorder.wait_runs("a", 1)
    await asyncio.wait_for(queue.stop(), DEADLINE)
    assert recorder.active["a"] == 0 and queue.processing == frozenset()


async def test_keys_added_before_start_wait_for_it() -> None:
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder)
    queue.add("standby-saw-this")
    await asyncio.sleep(0.05)  # nothing may run in this window: no worker exists yet
    assert recorder.count("standby-saw-this") == 0
    queue.start()
    await recorder.wait_runs("standby-saw-this", 1)
    await queue.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("grace", [0.0, 1.0])
async def test_stop_returns_while_idle_workers_wait_for_a_later_key(grace: float) -> None:
    """Regression: idle workers in a timed wait, woken and canceled in one step, once lost
    the cancellation (Python 3.11's wait_for) and stop() hung for ever."""
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder, workers=4)
    queue.start()
    queue.add("later", delay=30)
    queue.add("now")
    await recorder.wait_runs("now", 1)
    await asyncio.wait_for(queue.stop(grace=grace), DEADLINE)
    assert recorder.count("later") == 0


# --- priority lanes ---------------------------------------------------------------------------


async def test_a_normal_key_added_behind_a_burst_of_low_keys_runs_next() -> None:
    """A burst of creates (LOW) must not starve an instance in flight (NORMAL)."""
    recorder = Recorder(hold=0.01)
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    for n in range(200):
        queue.add(f"new-{n}", priority=Priority.LOW)
    queue.start()
    await recorder.wait_runs("new-0", 1)
    queue.add("running")  # NORMAL by default: a job notification, a VM change
    await recorder.wait_runs("running", 1)
    await queue.stop()
    order = [key for key, _ in recorder.runs]
    # new-0 was running when "running" arrived; new-1 may have been taken in the same step.
    assert order.index("running") <= 2, order[:5]


async def test_a_high_key_runs_before_due_normal_and_low_keys() -> None:
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    queue.add("low", priority=Priority.LOW)
    queue.add("normal")
    queue.add("deleted", priority=Priority.HIGH)
    queue.start()
    await recorder.wait_runs("low", 1)
    await queue.stop()
    assert [key for key, _ in recorder.runs] == ["deleted", "normal", "low"]


async def test_a_backlog_of_work_in_flight_gives_new_instances_a_turn() -> None:
    """Strict lanes made the instances created during a backlog (LOW) wait for all of it: the
    sustained run's create-to-launch tail. While LOW keys are due they get one take in
    LOW_TURN, in due order, and the higher lanes the rest."""
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    for n in range(2):
        queue.add(f"new-{n}", priority=Priority.LOW)
        await asyncio.sleep(0.001)  # distinct due times
    for n in range(3 * LOW_TURN):
        queue.add(f"running-{n}")
    queue.add("deleted", priority=Priority.HIGH)
    queue.start()
    await recorder.wait_runs("new-1", 1)
    await queue.stop()
    order = [key for key, _ in recorder.runs]
    assert order[0] == "deleted", order
    assert order.index("new-0") == LOW_TURN - 1, order
    assert order.index("new-1") == 2 * LOW_TURN - 1, order
    higher = [key for key in order if not key.startswith("new-")]
    assert higher == ["deleted"] + [f"running-{n}" for n in range(len(higher) - 1)], order


async def test_earliest_due_first_within_a_lane() -> None:
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    for name in ("a", "b", "c"):
        queue.add(name, priority=Priority.LOW)
        await asyncio.sleep(0.001)  # distinct due times
    queue.start()
    await recorder.wait_runs("c", 1)
    await queue.stop()
    assert [key for key, _ in recorder.runs] == ["a", "b", "c"]


async def test_a_low_key_runs_when_no_higher_key_is_due(make_queue) -> None:  # type: ignore[no-untyped-def]
    """No starvation while the higher lanes are empty, or hold only keys not yet due."""
    recorder = Recorder()
    queue = make_queue(recorder, workers=1)
    queue.add("normal-later", 5.0)
    queue.add("deleted-later", 5.0, priority=Priority.HIGH)
    queue.add("new", priority=Priority.LOW)
    await recorder.wait_runs("new", 1)
    assert recorder.count("normal-later") == 0 and recorder.count("deleted-later") == 0


async def test_re_adding_with_a_higher_priority_upgrades_the_queued_key() -> None:
    recorder = Recorder()
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    queue.add("first", priority=Priority.LOW)
    queue.add("upgraded", priority=Priority.LOW)
    queue.add("upgraded", 10.0)  # later, but NORMAL: keeps its due time, takes the lane
    assert queue.priority_of("upgraded") is Priority.NORMAL
    due = queue.due_in("upgraded")
    assert due is not None and due < 1.0
    queue.add("upgraded", priority=Priority.LOW)  # a lower lane never downgrades
    assert queue.priority_of("upgraded") is Priority.NORMAL
    assert len(queue) == 2
    queue.start()
    await recorder.wait_runs("first", 1)
    await queue.stop()
    assert [key for key, _ in recorder.runs] == ["upgraded", "first"]


async def test_a_key_added_while_processing_keeps_its_highest_lane() -> None:
    recorder = Recorder(hold=0.1)
    queue: WorkQueue[str] = WorkQueue(recorder, workers=1)
    queue.start()
    queue.add("a", priority=Priority.LOW)
    await recorder.wait_runs("a", 1)
    queue.add("a", priority=Priority.HIGH)  # parked while "a" runs
    queue.add("a", priority=Priority.LOW)
    queue.add("b")
    assert queue.priority_of("a") is Priority.HIGH
    await recorder.wait_runs("b", 1)
    await queue.stop()
    assert [key for key, _ in recorder.runs] == ["a", "a", "b"]
