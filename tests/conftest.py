"""Shared fixtures. Helpers (waiting, ports, configs, toy data) live in support.py."""

from __future__ import annotations

import copy
import subprocess
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


@pytest.fixture
def small_disk(tmp_path):
    """A 96 kB tmpfs (needs root); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
