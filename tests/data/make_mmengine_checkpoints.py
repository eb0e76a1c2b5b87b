"""Make the MMEngine checkpoints that tests/test_mmengine_checkpoints.py reads (NOT run by the suite).

It needs MMEngine 0.10.7, which Cockpit never depends on, so it runs in a throwaway venv:

    python3.11 -m venv /tmp/mmenv
    /tmp/mmenv/bin/pip install torch==2.13.0            # first, so pip keeps the CPU build
    /tmp/mmenv/bin/pip install mmengine==0.10.7 opencv-python-headless matplotlib
    /tmp/mmenv/bin/python tests/data/make_mmengine_checkpoints.py

It trains a tiny MLP (the same layers as ``tests/toys.py``'s ``ToyNet``, on the same data) with
MMEngine's own ``Runner`` and copies what it saved into ``tests/data/mmengine/``:

- ``epoch_1.pth``, ``epoch_2.pth``, ``epoch_3.pth``: an epoch-based run, 3 epochs of 2 iterations,
  SGD with momentum, a linear warm-up by iteration then a step decay by epoch, a validation metric
  each epoch. ``epoch_3.pth`` is where a resume from ``epoch_1.pth`` must arrive.
- ``iter_3.pth``, ``iter_6.pth``: an iteration-based run of 6 iterations, a cosine schedule.
- ``lr_epoch.json``, ``lr_iter.json``: the learning rate MMEngine used at each iteration.

With ``--check-cockpit FILE`` it instead loads a checkpoint that Cockpit wrote into an MMEngine
runner with ``load_from`` (the weights) and with ``resume`` and prints what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

OUT = Path(__file__).resolve().parent / "mmengine"


class ToyData(Dataset):
    """The data of tests/toys.py's ``ToyData``, written out again so this script needs no Cockpit."""

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 4, generator=generator)
        weights = torch.randn(4, 3, generator=torch.Generator().manual_seed(123))
        self.y = (self.x @ weights).argmax(dim=1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index]


class ToyNet(BaseModel):
    """``tests/toys.py``'s ``ToyNet`` as an MMEngine model: the same parameter names."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(0.0), nn.Linear(hidden, 3))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        if mode == "predict":
            return logits, data_samples
        return logits


class Accuracy(BaseMetric):
    def process(self, data_batch, data_samples) -> None:
        logits, labels = data_samples
        self.results.append((int((logits.argmax(1) == labels).sum()), int(labels.numel())))

    def compute_metrics(self, results) -> dict:
        return {"accuracy": sum(r for r, _ in results) / sum(n for _, n in results)}


class RecordLr(Hook):
    """Writes the learning rate of each iteration into a list (the reference for Cockpit's resume)."""

    def __init__(self, into: list) -> None:
        self.into = into

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.into.append(runner.optim_wrapper.get_lr()["lr"][0])


def loader(size: int, shuffle: bool) -> dict:
    return dict(dataset=ToyData(size), sampler=dict(type="DefaultSampler", shuffle=shuffle), batch_size=8,
                collate_fn=dict(type="default_collate"))


def epoch_run(work_dir: str, lrs: list) -> Runner:
    return Runner(
        model=ToyNet(), work_dir=work_dir,
        train_dataloader=loader(16, True),
        val_dataloader=loader(16, False), val_evaluator=[Accuracy()], val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=3),
                         dict(type="MultiStepLR", milestones=[2], gamma=0.5, by_epoch=True)],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        custom_hooks=[RecordLr(lrs)],
        randomness=dict(seed=0),
    )


def iter_run(work_dir: str, lrs: list) -> Runner:
    return Runner(
        model=ToyNet(), work_dir=work_dir,
        train_dataloader=loader(16, True),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        param_scheduler=[dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=6, eta_min=0.01)],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=3, by_epoch=False)),
        custom_hooks=[RecordLr(lrs)],
        randomness=dict(seed=0),
    )


def make() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build, files in (("epoch", epoch_run, ("epoch_1.pth", "epoch_2.pth", "epoch_3.pth")),
                               ("iter", iter_run, ("iter_3.pth", "iter_6.pth"))):
        with tempfile.TemporaryDirectory() as work_dir:
            lrs: list = []
            build(work_dir, lrs).train()
            for file in files:
                shutil.copy(Path(work_dir) / file, OUT / file)
            (OUT / f"lr_{name}.json").write_text(json.dumps(lrs) + "\n")
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


def check_cockpit(path: str) -> None:
    """Load a Cockpit checkpoint (of ``tests/toys.py``'s ToyNet) into MMEngine: weights, then a resume."""
    with tempfile.TemporaryDirectory() as work_dir:
        lrs: list = []
        runner = epoch_run(work_dir, lrs)
        runner._load_from = path
        runner.load_or_resume()
        print("load_from: loaded; net.0.weight[0] =", runner.model.net[0].weight[0].tolist())
    with tempfile.TemporaryDirectory() as work_dir:
        runner = epoch_run(work_dir, [])
        runner._load_from, runner._resume = path, True
        try:
            runner.load_or_resume()
            print(f"resume: epoch {runner.epoch}, iter {runner.iter}, lr {runner.optim_wrapper.get_lr()}")
        except Exception as error:  # noqa: BLE001 - a report, not a program
            print(f"resume: {type(error).__name__}: {error}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-cockpit", metavar="FILE", help="load a Cockpit checkpoint into MMEngine")
    args = parser.parse_args()
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # MMEngine's own resume needs it on torch >= 2.6
    if args.check_cockpit:
        check_cockpit(args.check_cockpit)
    else:
        make()
