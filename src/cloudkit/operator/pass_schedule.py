"""When a key is reconciled again after a pass: our policy's requeue, or upstream's queue.

The baseline policy (`poll_every_pass`) reproduces how upstream's controller-runtime queue
schedules passes (reference §3.1), so that the baseline comparison measures the policy and not
a difference of queues. It is a scheduling rule of its own, apart from what a pass does
(reconcile.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from cloudkit.lifecycle.types import LifecycleConfig
from cloudkit.operator.kube_objects import InstanceKey


@dataclass
class PassSchedule:
    """When a key runs next, after a pass that wanted `delay` and did (not) write the object.

    Under the baseline policy (`poll_every_pass`) as upstream's controller-runtime queue would
    run it (reference §3.1):
    - each write of its own causes one more pass at once (its watch sees its own writes);
    - a requeue-after is a timer that passes woken by events neither cancel nor postpone: per
      key the earliest pending timer fires (client-go's delaying queue keeps the earliest).
    Our own policy does neither: the watch events of its writes carry nothing new
    (`is_own_write`), and each pass's requeue replaces the one before. Times: monotonic seconds.
    """

    config: LifecycleConfig
    _timers: dict[InstanceKey, float] = field(default_factory=dict)

    def after_pass(
        self, key: InstanceKey, delay: timedelta | None, *, wrote: bool, now: float
    ) -> timedelta | None:
        if not self.config.poll_every_pass:
            return delay
        timer = self._timers.pop(key, None)
        if timer is not None and timer <= now:
            timer = None  # it fired: this is its pass
        if delay is not None:
            due = now + delay.total_seconds()
            timer = due if timer is None else min(timer, due)
        if timer is not None:
            self._timers[key] = timer
        if wrote:
            return timedelta(0)
        return None if timer is None else timedelta(seconds=timer - now)

    def forget(self, key: InstanceKey) -> None:
        self._timers.pop(key, None)
