"""Fixtures of the resilience proofs: the seed of every random schedule, and where logs go.

Each test starts one full local stack (`resilience_lab.open_lab`) and runs its instances in
parallel inside it. The seed is fixed so a failure can be replayed; set
CLOUDKIT_RESILIENCE_SEED to explore other schedules.
"""

from __future__ import annotations

import os
import random

import pytest

DEFAULT_SEED = 20260210


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("CLOUDKIT_RESILIENCE_SEED", DEFAULT_SEED))


@pytest.fixture
def rng(seed: int) -> random.Random:
    print(f"resilience seed: {seed} (CLOUDKIT_RESILIENCE_SEED replays it)")
    return random.Random(seed)
