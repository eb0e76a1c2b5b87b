"""Shared fixtures: a tiny CPU classification problem and a runner factory."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cockpit import BaseModel, Runner


class ToyData(Dataset):
    """``size`` points in 4-D, 3 classes separable by a fixed linear map; same data for a given seed."""

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 4, generator=generator)
        weights = torch.randn(4, 3, generator=torch.Generator().manual_seed(123))
        self.y = (self.x @ weights).argmax(dim=1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class ToyNet(BaseModel):
    """A small MLP with dropout (so resume tests also cover the RNG state)."""

    def __init__(self, hidden: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 3))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        if mode == "predict":
            return logits, data_samples
        return logits


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
