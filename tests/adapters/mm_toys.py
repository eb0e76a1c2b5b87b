"""A tiny MMEngine problem for the adapter tests: a model, data, a metric and two hooks, registered by name.

A config names them after ``custom_imports=dict(imports=['adapters.mm_toys'])`` (tests/ on the path),
as a downstream codebase (mmdet, mmpretrain) registers its own. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS

from cockpit.commands import Command


@MODELS.register_module()
class ToyModel(BaseModel):
    """A linear classifier of 8 features into 2 classes."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.net = torch.nn.Linear(features, 2)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "tensor") -> Any:
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, labels)}
        if mode == "predict":
            return [(logits.argmax(1), labels)]
        return logits


@DATASETS.register_module()
class ToyData(torch.utils.data.Dataset):
    """``size`` samples of a linearly separable problem, the same for a given seed."""

    def __init__(self, size: int = 64, seed: int = 0, features: int = 8) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(size, features, generator=generator)
        self.labels = (self.inputs[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.inputs[index], "labels": self.labels[index]}


@METRICS.register_module()
class ToyAccuracy(BaseMetric):
    def process(self, data_batch: Any, data_samples: Any) -> None:
        for predictions, labels in data_samples:
            self.results.append(((predictions == labels).sum().item(), len(labels)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        return {"accuracy": sum(r[0] for r in results) / sum(r[1] for r in results)}


@HOOKS.register_module()
class GateHook(Hook):
    """Holds each training iteration until ``gate`` exists, then sleeps ``seconds`` (so a run lasts while a test acts)."""

    def __init__(self, gate: str | None = None, seconds: float = 0.0) -> None:
        self.gate = gate
        self.seconds = seconds

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.gate is not None:
            while not os.path.exists(self.gate):
                time.sleep(0.02)
        if self.seconds:
            time.sleep(self.seconds)


@HOOKS.register_module()
class NoteHook(Hook):
    """Declares a command of its own: ``note <text>`` puts the text in the run info."""

    def commands(self) -> list[Command]:
        return [Command("note", "put a note in the run info", self.note, args=("text",))]

    def note(self, run: Any, text: str) -> str:
        run.message_hub.update_info("note", f"{text} at iter {run.runner.iter}")
        return f"noted {text}"
