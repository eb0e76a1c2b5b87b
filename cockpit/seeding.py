"""Seeding a run: Python, NumPy and torch, from the config's ``randomness``."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally make torch deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def seed_run(randomness: Mapping[str, Any] | None, rank: int) -> tuple[int, bool]:
    """Apply MMEngine's ``randomness=dict(seed=..., deterministic=..., diff_rank_seed=...)``.

    Returns:
        The seed used (drawn at random when none is given) and whether torch is deterministic.
    """
    randomness = dict(randomness or {})
    seed = randomness.get("seed")
    seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
    deterministic = bool(randomness.get("deterministic", False))
    if randomness.get("diff_rank_seed", False):
        seed += rank
    set_random_seed(seed, deterministic)
    return seed, deterministic
