"""Shared fixtures: a tiny CPU classification problem and a runner factory."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from toys import ToyData, ToyNet

from cockpit import Runner

TESTS_DIR = Path(__file__).parent
__all__ = ["TESTS_DIR", "ToyData", "ToyNet", "tiny_cfg"]


def tiny_cfg(work_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """A complete epoch-based config (2 epochs x 8 iterations, validation each epoch).

    Keys in ``overrides`` replace the defaults; a value of None removes the key.
    """
    cfg: dict[str, Any] = dict(
        model=dict(type=ToyNet),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dict(type=ToyData, size=64), sampler=dict(type="DefaultSampler", shuffle=True),
                              batch_size=8),
        val_dataloader=dict(dataset=dict(type=ToyData, size=32, seed=1),
                            sampler=dict(type="DefaultSampler", shuffle=False), batch_size=16),
        val_evaluator=dict(type="Accuracy"),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=4, backends=("json",))),
        randomness=dict(seed=0),
    )
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def make_runner(tmp_path):
    """``make_runner(**overrides)`` builds a quiet Runner on ``tiny_cfg(tmp_path / 'work', **overrides)``."""

    def factory(**overrides: Any) -> Runner:
        cfg = tiny_cfg(tmp_path / "work", **overrides)
        return Runner.from_cfg(copy.deepcopy(cfg), log_to_console=False)

    return factory
