"""The adapters' overhead: each framework's tiny run with and without its cockpit adapter.

For each installed framework, the same run is trained again and again in this process,
alternating without and with the adapter (the order flips every round, so both see the same
machine load), and the medians of the per-step times are compared:

- MMEngine: an MLP (64 -> 128 -> 10, batch 32, SGD with momentum) on 4,096 in-memory samples,
  ``IterBasedTrainLoop`` with an ``InfiniteSampler``, the default hooks (LoggerHook every 50
  iterations), no checkpoint; with ``CockpitHook`` in ``custom_hooks``;
- Lightning: the same MLP and data as a ``LightningModule``, no logger, progress bar, model
  summary or checkpoint; with ``callbacks=[CockpitCallback()]``;
- Hugging Face: a 2-layer Bert built from a config (hidden size 32, 16 tokens, batch 8) on 256
  random sequences, ``logging_steps=50``, no saving; with ``callbacks=[CockpitCallback()]``.

With the adapter, the run is served as always (its channel thread runs and answers requests); no
view is attached, so no event goes out. One torch thread. The steps timed are those after the
first ``WARMUP`` (the first steps pay one-time costs in both variants); the time is measured by
the same small hook or callback in both variants. Wall time per step is the target (overhead at
most 3% of the step time). Beside it: the training thread's CPU time per step (what the adapter
adds to the step itself; it moves less than the wall time when other programs share the cores)
and the process's (all threads: the channel thread's too). "paired" is the median of each round's own ratio (the
two runs of a round ran side by side, so on a shared machine it moves less than the ratio of medians).

Before each round, the garbage of the rounds before is collected and what lives is left out of
later collections (``settle``): otherwise a full collection, walking every earlier round's
leftovers, may land in the timed steps of either variant.

``--unserved``: a third variant in every round, the adapter with no channel serving the run (no channel
thread): what serving costs the run is the difference ("unserved" row). ``--profile``: cProfile of one run with
the adapter, the adapter's functions first (per step), to see what its per-step path costs.

Run: ``.venv/bin/python benchmarks/adapters.py [--rounds 7] [--steps 400] [--only mmengine,lightning,hf]
[--unserved] [--profile]``
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import importlib.util
import logging
import os
import pstats
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SAMPLES, FEATURES, HIDDEN, CLASSES, BATCH = 4096, 64, 128, 10, 32
WARMUP = 20
TARGET = 0.03


@dataclass
class Timing:
    """Seconds per step after the warm-up: wall clock, the training thread's CPU and the whole process's."""

    wall: float
    thread: float
    cpu: float


class StepClock:
    """Notes the time when step ``WARMUP`` starts and when training ends (the same in both variants)."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None
        self.ended: tuple[float, float] | None = None
        self.steps = 0

    def start(self) -> None:
        self.started = (time.perf_counter(), time.thread_time(), time.process_time())

    def end(self, steps: int) -> None:
        self.ended = (time.perf_counter(), time.thread_time(), time.process_time())
        self.steps = steps

    def timing(self) -> Timing:
        count = self.steps - WARMUP
        return Timing(*((end - start) / count for start, end in zip(self.started, self.ended, strict=True)))


def mlp_data(seed: int = 0) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    return torch.utils.data.TensorDataset(inputs, inputs[:, :CLASSES].argmax(1))


# --- MMEngine -----------------------------------------------------------------------------------
def mmengine_round(adapter: bool, steps: int, folder: Path, index: int) -> Timing:
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    if adapter:
        import cockpit.adapters.mmengine  # noqa: F401 - registers CockpitHook

    class MLP(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

        def forward(self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "tensor") -> Any:
            logits = self.net(inputs)
            return {"loss": F.cross_entropy(logits, labels)} if mode == "loss" else logits

    class Pairs(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.data = mlp_data()

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            inputs, label = self.data[index]
            return {"inputs": inputs, "labels": label}

    clock = StepClock()

    class Clock(Hook):
        priority = "HIGHEST"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            if runner.iter == WARMUP:
                clock.start()

        def after_train(self, runner: Any) -> None:
            clock.end(runner.iter)

    hooks: list[Any] = [Clock()]
    if adapter:
        hooks.append(dict(type="CockpitHook"))
    runner = Runner(model=MLP(), work_dir=str(folder / f"mm{index}"), experiment_name=f"bench_{index}",
                    train_dataloader=dict(dataset=Pairs(), sampler=dict(type="InfiniteSampler", shuffle=True),
                                          batch_size=BATCH, collate_fn=dict(type="default_collate")),
                    train_cfg=dict(by_epoch=False, max_iters=steps), optim_wrapper=dict(
                        optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
                    default_hooks=dict(logger=dict(type="LoggerHook", interval=50),
                                       checkpoint=dict(type="CheckpointHook", interval=10 ** 9)),
                    custom_hooks=hooks, randomness=dict(seed=0), log_level="WARNING")
    runner.train()
    return clock.timing()


# --- Lightning ----------------------------------------------------------------------------------
def lightning_round(adapter: bool, steps: int, folder: Path, index: int) -> Timing:
    import lightning as L

    from cockpit.adapters.lightning import CockpitCallback

    class MLP(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            inputs, labels = batch
            return F.cross_entropy(self.net(inputs), labels)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    clock = StepClock()

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == WARMUP:
                clock.start()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            clock.end(trainer.global_step)

    callbacks: list[Any] = [Clock()]
    if adapter:
        callbacks.append(CockpitCallback(work_dir=folder / f"pl{index}"))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks,
                        default_root_dir=str(folder / f"pl{index}"))
    loader = torch.utils.data.DataLoader(mlp_data(), batch_size=BATCH, shuffle=True)
    trainer.fit(MLP(), loader)
    return clock.timing()


# --- Hugging Face -------------------------------------------------------------------------------
def hf_round(adapter: bool, steps: int, folder: Path, index: int) -> Timing:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from cockpit.adapters.hf import CockpitCallback

    class Tokens(torch.utils.data.Dataset):
        def __init__(self) -> None:
            generator = torch.Generator().manual_seed(0)
            self.ids = torch.randint(1, 100, (256, 16), generator=generator)
            self.labels = (self.ids[:, 0] > 50).long()

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == WARMUP:
                clock.start()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.end(state.global_step)

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64))
    args = TrainingArguments(str(folder / f"hf{index}"), use_cpu=True, report_to=[], max_steps=steps,
                             per_device_train_batch_size=8, logging_steps=50, save_strategy="no",
                             disable_tqdm=True, dataloader_num_workers=0, seed=0)
    callbacks: list[Any] = [Clock()] + ([CockpitCallback()] if adapter else [])
    Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=callbacks).train()
    return clock.timing()


FRAMEWORKS: dict[str, tuple[tuple[str, ...], Callable[[bool, int, Path, int], Timing]]] = {
    "mmengine": (("mmengine", "cv2"), mmengine_round),
    "lightning": (("lightning",), lightning_round),
    "hf": (("transformers", "accelerate"), hf_round),
}


def quiet() -> None:
    """Frameworks print banners, tips and progress; the figures are what matters here."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "transformers", "mmengine", "cockpit"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def profile(name: str, round_: Callable[[bool, int, Path, int], Timing], steps: int, folder: Path) -> None:
    """cProfile of one run with the adapter: the adapter's functions by their own time, per step."""
    round_(True, WARMUP + 20, folder, 0)
    profiler = cProfile.Profile()
    profiler.enable()
    round_(True, steps, folder, 1)
    profiler.disable()
    rows = [(own, total, calls, f"{Path(file).name}:{line}({function})")
            for (file, line, function), (_, calls, own, total, _) in pstats.Stats(profiler).stats.items()
            if f"cockpit{os.sep}adapters" in file]
    print(f"{name}: the adapter's functions in one profiled run of {steps} steps (profiling slows them), per step")
    print(f"{'own us':>8} {'total us':>9} {'calls':>7}  function")
    for own, total, calls, label in sorted(rows, reverse=True)[:20]:
        print(f"{own / steps * 1e6:>8.1f} {total / steps * 1e6:>9.1f} {calls / steps:>7.2f}  {label}")


def settle() -> None:
    """Before a round: collect the garbage of the rounds before, and leave what lives out of later collections.

    Each round leaves a runner behind (reference cycles), and the frameworks keep each run's hub, logger and
    visualizer for the process's life (MMEngine's instances by experiment name): a full collection then walks all
    of it, tenths of a second that would land in whichever round's steps it happens in, and with the variant
    whose rounds make more objects more often.
    """
    gc.collect()
    gc.freeze()


class _NoChannel:
    """Stands in for ``ChannelServer`` (``--unserved``): the adapter runs, nothing serves its run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _NoChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@contextlib.contextmanager
def unserved() -> Iterator[None]:
    """The adapter without its channel thread: what serving the run costs is the difference."""
    from cockpit.adapters import base

    served = base.ChannelServer
    base.ChannelServer = _NoChannel
    try:
        yield
    finally:
        base.ChannelServer = served


#: The variants of a round: without the adapter, with it, and (``--unserved``) with it but no channel.
PLAIN, ADAPTER, UNSERVED = "without", "with", "unserved"


def compare(name: str, plain: list[Timing], other: list[Timing]) -> str:
    """One row: ``other``'s rounds against ``plain``'s (medians, and the median of each round's own ratio)."""
    rows = []
    for field in ("wall", "thread", "cpu"):
        before = statistics.median(getattr(t, field) for t in plain)
        after = statistics.median(getattr(t, field) for t in other)
        paired = statistics.median(getattr(b, field) / getattr(a, field) - 1 for a, b in zip(plain, other, strict=True))
        rows.append((before, after, after / before - 1, paired))
    (before, after, overhead, paired), (thread, thread_after, thread_overhead, _), \
        (cpu, cpu_after, cpu_overhead, _) = rows
    return (f"{name:<10} {before * 1e3:>10.3f}ms {after * 1e3:>7.3f}ms {overhead:>+8.1%} "
            f"{(after - before) * 1e6:>+7.0f}us {paired:>+7.1%} | {thread * 1e3:>8.3f} -> "
            f"{thread_after * 1e3:.3f}ms {thread_overhead:>+8.1%} | {cpu * 1e3:>5.3f} -> "
            f"{cpu_after * 1e3:.3f}ms {cpu_overhead:>+7.1%} | "
            f"<= {TARGET:.0%}: {'met' if overhead <= TARGET else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--only", default=",".join(FRAMEWORKS))
    parser.add_argument("--profile", action="store_true", help="profile one run with the adapter instead")
    parser.add_argument("--unserved", action="store_true",
                        help="a third variant in every round: the adapter with no channel serving the run")
    options = parser.parse_args()
    torch.set_num_threads(1)
    quiet()
    variants = [PLAIN, ADAPTER] + ([UNSERVED] if options.unserved else [])
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{options.rounds} rounds of {options.steps} steps ({WARMUP} warm-up), medians")
    print(f"{'framework':<10} {'step without':>12} {'with':>9} {'overhead':>9} {'per step':>9} {'paired':>7} | "
          f"{'training thread CPU':>19} {'overhead':>9} | {'process CPU':>11} {'overhead':>9} | target (wall)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in options.only.split(","):
            needs, round_ = FRAMEWORKS[name]
            missing = [m for m in needs if importlib.util.find_spec(m) is None]
            if missing:
                print(f"{name:<10} skipped: {', '.join(missing)} not installed (pip install 'cockpit[{name}]')")
                continue
            folder = Path(tmp) / name
            if options.profile:
                profile(name, round_, options.steps, folder)
                continue
            index = 0
            results: dict[str, list[Timing]] = {variant: [] for variant in variants}
            for r in range(-1, options.rounds):  # round -1: first-time costs (imports, caches) out of the way
                steps = WARMUP + 20 if r < 0 else options.steps
                for variant in (variants if r % 2 == 0 else variants[::-1]):
                    settle()
                    with unserved() if variant == UNSERVED else contextlib.nullcontext():
                        timing = round_(variant != PLAIN, steps, folder, index := index + 1)
                    if r >= 0:
                        results[variant].append(timing)
            print(compare(name, results[PLAIN], results[ADAPTER]))
            if options.unserved:
                print(compare("  unserved", results[PLAIN], results[UNSERVED]))
            print(f"{'':<10} load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
