"""Checkpoint benchmarks, each measured against its baseline in the same run.

1. Save: Cockpit's full, atomic, fsynced checkpoint of a ~10M-parameter model with its
   AdamW state (a ~110 MB file), checksum included, against a plain ``torch.save`` of the
   same model and optimizer state plus an fsync. Target: within 1.1x. Also printed: the
   checksum alone (``cockpit.checksum.digest`` over the same checkpoint), and a load with
   its checksum check (``cockpit.checkpoint.load_checkpoint``) against a plain
   ``torch.load(weights_only=True)`` of the same file.
2. Resume position: the time from ``Runner.train()`` on a resumed run to its first
   training step, resuming at the start of a long epoch against near its end.
   Target: about 1x (nothing is replayed).

Run: ``.venv/bin/python benchmarks/checkpoint_save.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from toys import ToyData, ToyNet  # noqa: E402

from cockpit import BaseModel, Hook, Runner  # noqa: E402
from cockpit.checkpoint import load_checkpoint  # noqa: E402
from cockpit.checksum import digest  # noqa: E402


class Big(BaseModel):
    """~10M parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(9)], nn.Linear(1024, 10))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        out = self.layers(inputs)
        return {"loss": out.pow(2).mean()} if mode == "loss" else out


class Vectors(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        return (torch.randn(1024),)


def plain_save(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    with open(path, "wb") as file:
        torch.save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}, file)
        file.flush()
        os.fsync(file.fileno())


def bench_save(rounds: int = 7) -> float:
    with tempfile.TemporaryDirectory() as folder:
        runner = Runner(
            model=dict(type=Big), work_dir=folder, log_to_console=False,
            train_dataloader=dict(dataset=dict(type=Vectors), batch_size=8),
            optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-4)),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            default_hooks=dict(logger=None, checkpoint=None),
        )
        runner.train()  # one epoch so the optimizer has its moment buffers
        params = sum(p.numel() for p in runner.model.parameters())
        plain, cockpit, checksum, plain_load, cockpit_load = [], [], [], [], []
        # Interleaved, so drift in the machine affects both alike. Each save writes a new file,
        # as real checkpoints do (epoch_1.pth, epoch_2.pth...); deleting the old ones is not timed.
        for index in range(rounds):
            start = time.perf_counter()
            plain_save(runner.model, runner.optim_wrapper.optimizer, Path(folder) / f"plain_{index}.pth")
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            path = runner.save_checkpoint(folder, f"cockpit_{index}.pth")
            cockpit.append(time.perf_counter() - start)
            contents = runner.checkpointer.contents()
            start = time.perf_counter()
            digest(contents)
            checksum.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.load(path, map_location="cpu", weights_only=True)
            plain_load.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_checkpoint(path)
            cockpit_load.append(time.perf_counter() - start)
            size = path.stat().st_size / 2**20
            for old in Path(folder).glob("*.pth"):
                old.unlink()
    p, c, s = statistics.median(plain), statistics.median(cockpit), statistics.median(checksum)
    pl, cl = statistics.median(plain_load), statistics.median(cockpit_load)
    print(f"save: {params / 1e6:.1f}M params, {size:.0f} MiB file; plain torch.save+fsync {p * 1000:.0f} ms, "
          f"cockpit atomic save with checksum {c * 1000:.0f} ms; ratio {c / p:.3f}x (target <= 1.1x); "
          f"the checksum alone {s * 1000:.0f} ms ({s / p:.1%} of the plain save)")
    print(f"load: plain torch.load(weights_only=True) {pl * 1000:.0f} ms, cockpit load with checksum check "
          f"{cl * 1000:.0f} ms; ratio {cl / pl:.3f}x")
    return c / p


class StopAtFirstStep(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        runner.first_step_at = time.perf_counter()
        raise KeyboardInterrupt  # the measurement ends at the first step


def _time_to_first_step(work_dir: str, checkpoint: str) -> float:
    runner = Runner(
        model=dict(type=ToyNet), work_dir=work_dir, log_to_console=False, resume=checkpoint,
        train_dataloader=dict(dataset=dict(type=ToyData, size=200_000), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook")),
        custom_hooks=[StopAtFirstStep()],
    )
    start = time.perf_counter()
    try:
        runner.train()
    except KeyboardInterrupt:
        pass
    return runner.first_step_at - start


def bench_resume(rounds: int = 5) -> float:
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, batch in (("start", 1), ("end", 199_990)):
            runner = Runner(
                model=dict(type=ToyNet), work_dir=folder, log_to_console=False,
                train_dataloader=dict(dataset=dict(type=ToyData, size=200_000), batch_size=1),
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                train_cfg=dict(by_epoch=True, max_epochs=1), default_hooks=dict(logger=None),
            )
            runner.train_loop.restore_position(0, batch, batch)
            paths[name] = str(runner.save_checkpoint(folder, f"{name}.pth"))
        start_times, end_times = [], []
        for _ in range(rounds):
            start_times.append(_time_to_first_step(folder, paths["start"]))
            end_times.append(_time_to_first_step(folder, paths["end"]))
    s, e = statistics.median(start_times), statistics.median(end_times)
    print(f"resume: first step {s * 1000:.1f} ms after resuming at batch 1 of 200,000, {e * 1000:.1f} ms at "
          f"batch 199,990; ratio {e / s:.3f}x (target about 1x)")
    return e / s


if __name__ == "__main__":
    torch.set_num_threads(1)
    bench_save()
    bench_resume()
