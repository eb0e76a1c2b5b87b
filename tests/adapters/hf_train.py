"""``python hf_train.py OUTPUT_DIR [options]``: a tiny Hugging Face Trainer run with ``CockpitCallback()`` in it.

A 2-layer Bert built from a config (no download) classifies random token sequences. The adapter tests
run it in a child process. ``--gate FILE``: every step waits for the file (a test holds the run still
by deleting it). ``--fail-at N``: the loss raises at step N.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from cockpit.adapters.hf import CockpitCallback
from cockpit.commands import Command


class Tokens(torch.utils.data.Dataset):
    """``size`` random sequences of 16 tokens; the label is whether token 1 appears more than token 2."""

    def __init__(self, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (size, 16), generator=generator)
        self.labels = ((self.ids == 1).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


class Gate(TrainerCallback):
    """Every step waits until the gate file exists."""

    def __init__(self, gate: str | None) -> None:
        self.gate = gate

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        while self.gate is not None and not os.path.exists(self.gate):
            time.sleep(0.02)


class Note(TrainerCallback):
    """Declares a command of its own: ``note <text>`` puts the text in the run info."""

    def commands(self) -> list[Command]:
        return [Command("note", "put a note in the run info", self.note, args=("text",))]

    def note(self, run: Any, text: str) -> str:
        run.message_hub.update_info("note", f"{text} at step {run.state.global_step}")
        return f"noted {text}"


class FailingTrainer(Trainer):
    fail_at = -1

    def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if self.state.global_step == self.fail_at:
            raise RuntimeError(f"failing on purpose at step {self.fail_at}")
        return super().compute_loss(model, inputs, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--gate")
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--fail-at", type=int, default=-1)
    options = parser.parse_args()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64))
    args = TrainingArguments(options.output_dir, use_cpu=True, report_to=[], max_steps=options.max_steps,
                             per_device_train_batch_size=8, per_device_eval_batch_size=16, learning_rate=0.01,
                             warmup_steps=10, lr_scheduler_type="linear", logging_steps=5, save_strategy="no",
                             eval_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0)
    FailingTrainer.fail_at = options.fail_at
    trainer = FailingTrainer(model=model, args=args, train_dataset=Tokens(64, 0), eval_dataset=Tokens(32, 1),
                             callbacks=[Gate(options.gate), Note(), CockpitCallback()])
    trainer.train()


if __name__ == "__main__":
    main()
