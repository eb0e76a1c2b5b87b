"""Toy data and model shared by the tests and by the child processes they start."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cockpit import BaseModel


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
