"""``python lightning_train.py WORK_DIR [options]``: a tiny Lightning fit with ``CockpitCallback()`` in it.

The adapter tests run it in a child process. ``--gate FILE``: every batch waits for the file (a test
holds the run still by deleting it). ``--fail-at N``: training_step raises at step N. ``--devices 2``:
DDP over two CPU processes.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cockpit.adapters.lightning import CockpitCallback
from cockpit.commands import Command


class ToyModule(L.LightningModule):
    """A linear classifier of 8 features into 2 classes, SGD with a step-wise warm-up."""

    def __init__(self, fail_at: int = -1) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 2)
        self.fail_at = fail_at

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.fail_at:
            raise RuntimeError(f"failing on purpose at step {self.fail_at}")
        inputs, labels = batch
        loss = F.cross_entropy(self.net(inputs), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        inputs, labels = batch
        logits = self.net(inputs)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(1) == labels).float().mean())

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, 0.5 + step / 10))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def data(size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 8, generator=generator)
    return DataLoader(TensorDataset(inputs, (inputs[:, 0] > 0).long()), batch_size=8, shuffle=seed == 0,
                      generator=torch.Generator().manual_seed(seed))


class Gate(L.Callback):
    """Every training batch waits until the gate file exists."""

    def __init__(self, gate: str | None) -> None:
        self.gate = gate

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        while self.gate is not None and not os.path.exists(self.gate):
            time.sleep(0.02)


class Note(L.Callback):
    """Declares a command of its own: ``note <text>`` puts the text in the run info."""

    def commands(self) -> list[Command]:
        return [Command("note", "put a note in the run info", self.note, args=("text",))]

    def note(self, run: Any, text: str) -> str:
        # Every rank applies it: each leaves a file, so a test sees that the command reached them all.
        with open(os.path.join(str(run.work_dir), f"note-rank{run.trainer.global_rank}"), "a") as notes:
            notes.write(f"{text} at step {run.trainer.global_step}\n")
        run.message_hub.update_info("note", f"{text} at step {run.trainer.global_step}")
        return f"noted {text}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir")
    parser.add_argument("--gate")
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--fail-at", type=int, default=-1)
    parser.add_argument("--devices", type=int, default=1, help="above 1: DDP over that many CPU processes (gloo)")
    args = parser.parse_args()
    L.seed_everything(0)
    trainer = L.Trainer(max_steps=args.max_steps, accelerator="cpu", devices=args.devices, logger=False,
                        strategy="ddp" if args.devices > 1 else "auto",
                        default_root_dir=args.work_dir, enable_progress_bar=False, enable_model_summary=False,
                        val_check_interval=1000, check_val_every_n_epoch=None, num_sanity_val_steps=0,
                        callbacks=[Gate(args.gate), Note(), CockpitCallback(work_dir=args.work_dir)])
    trainer.fit(ToyModule(args.fail_at), data(64, 0), data(32, 1))


if __name__ == "__main__":
    main()
