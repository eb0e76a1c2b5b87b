"""Shared fixtures. Helpers (waiting, ports, configs, toy data) live in support.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support import tiny_cfg

from cockpit import Runner


@pytest.fixture
def make_runner(tmp_path):
    """``make_runner(**overrides)`` builds a quiet Runner on ``tiny_cfg(tmp_path / 'work', **overrides)``."""

    def factory(**overrides: Any) -> Runner:
        cfg = tiny_cfg(tmp_path / "work", **overrides)
        return Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)

    return factory
