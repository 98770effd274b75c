"""Fixtures of the leader-election proofs: the seed of the random kill moments, and the
resilience lab's modules on the import path (leadership_lab builds on them).

The seed is fixed so a failure can be replayed; set CLOUDKIT_RESILIENCE_SEED to explore others.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "resilience"))

DEFAULT_SEED = 20261130


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CLOUDKIT_RESILIENCE_SEED", DEFAULT_SEED))
    print(f"leadership seed: {seed} (CLOUDKIT_RESILIENCE_SEED replays it)")
    return random.Random(seed)
