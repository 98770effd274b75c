"""Fixtures of the leader-election proofs: the seed of the random kill moments.

The seed is fixed so a failure can be replayed; set CLOUDKIT_RESILIENCE_SEED to explore others.
"""

from __future__ import annotations

import os
import random

import pytest

DEFAULT_SEED = 20261130


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CLOUDKIT_RESILIENCE_SEED", DEFAULT_SEED))
    print(f"leadership seed: {seed} (CLOUDKIT_RESILIENCE_SEED replays it)")
    return random.Random(seed)
