"""Loop overhead: Cockpit's ``Runner`` with its default hooks against a plain PyTorch loop.

Both sides train the same tiny MLP (64 -> 128 -> 10, batch 32, SGD with momentum) on
the same in-memory data (4,096 samples, so 128 iterations an epoch) for the same
number of epochs, with the same DataLoader settings (batch_size=32, shuffled,
num_workers=0), in one process with one torch thread:

- plain: ``DataLoader`` + forward + ``cross_entropy`` + backward + step, the loss read
  every 10 iterations, and ``torch.save`` of the model and optimizer at the end;
- cockpit: ``Runner`` with the default hooks (RuntimeInfo, IterTimer, DistSamplerSeed,
  Logger every 10 iterations writing JSON lines, TensorBoard and the log file,
  ParamScheduler, and CheckpointHook saving once, at the end).

What is timed is the training loop, from the first batch to the final checkpoint on
disk; Cockpit's one-time costs (building the runner, the run folder, the writers) are
reported apart. Rounds alternate plain/cockpit so both see the same machine load, and
the medians of the per-iteration times are compared. Wall time is the target; CPU time
of the process (all its threads: tensorboardX writes from a thread of its own) is
printed beside it because it holds steady when other programs share the cores.
Target: cockpit/plain <= 1.05.

``--hidden N`` widens the hidden layer (default 128), which lengthens the step while Cockpit's
work per step stays the same: the overhead as a share of a heavier step.

``--breakdown`` also runs Cockpit with parts switched off (TensorBoard, all writers,
the LoggerHook, the health guard, every hook but the final checkpoint, and every hook and the
checkpoint: the bare runner) and prints each hook's time per iteration, as the runner's hub
measures it; ``--profile`` adds a cProfile of one Cockpit run.

Run: ``.venv/bin/python benchmarks/loop_overhead.py [--rounds 5] [--epochs 16] [--hidden 128] [--breakdown] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cockpit import BaseModel, Hook, Priority, Runner

SAMPLES, FEATURES, HIDDEN, CLASSES, BATCH = 4096, 64, 128, 10, 32
LOG_INTERVAL = 10
TARGET = 1.05
LEARNED = 1.2  # the last logged loss must be under this (chance is ln 10 = 2.3)

CHECKPOINT_AT_END = dict(type="CheckpointHook", interval=-1, save_last=True)
NO_DEFAULT_HOOKS = dict(runtime_info=None, timer=None, sampler_seed=None, logger=None, param_scheduler=None)
#: Cockpit's configurations, as ``default_hooks`` (and ``health_guard``, Cockpit's own hook, on by default):
#: the default hooks first, then with parts switched off (``--breakdown``).
VARIANTS: dict[str, dict[str, Any]] = {
    "cockpit": dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL), checkpoint=CHECKPOINT_AT_END),
    "  without TensorBoard": dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL, backends=("json",)),
                                  checkpoint=CHECKPOINT_AT_END),
    "  without writers": dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL, backends=()),
                              checkpoint=CHECKPOINT_AT_END),
    "  without LoggerHook": dict(logger=None, checkpoint=CHECKPOINT_AT_END),
    "  without health guard": dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL),
                                   checkpoint=CHECKPOINT_AT_END, health_guard=None),
    "  only the checkpoint": dict(NO_DEFAULT_HOOKS, checkpoint=CHECKPOINT_AT_END, health_guard=None),
    "  no hook, no checkpoint": dict(NO_DEFAULT_HOOKS, checkpoint=None, health_guard=None),
}


class MLP(BaseModel):
    """64 -> ``hidden`` (128 unless ``--hidden``) -> 10."""

    hidden = HIDDEN

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, self.hidden), nn.ReLU(), nn.Linear(self.hidden, CLASSES))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        return logits


def learning_rate() -> float:
    """0.05 for the default width, less for a wider layer (whose larger steps would diverge)."""
    return 0.05 * min(1.0, HIDDEN / MLP.hidden)


def make_dataset() -> TensorDataset:
    """Points labelled by a fixed random linear map: learnable, so the loss really falls."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    labels = (inputs @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(dim=1)
    return TensorDataset(inputs, labels)


@dataclass
class Timing:
    """Seconds per iteration: wall clock, and CPU time of the whole process."""

    wall: float
    cpu: float


class Stopwatch(Hook):
    """Times the train loop, from ``before_train`` (after the run's set-up) to ``after_train``.

    It overrides only these two stages, so it adds nothing to an iteration.
    """

    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.started = self.started_cpu = self.ended = self.ended_cpu = 0.0

    def before_train(self, runner: Runner) -> None:
        self.started, self.started_cpu = time.perf_counter(), time.process_time()

    def after_train(self, runner: Runner) -> None:
        self.ended, self.ended_cpu = time.perf_counter(), time.process_time()


def plain_round(dataset: TensorDataset, epochs: int, out_dir: Path) -> tuple[Timing, float]:
    """Train with a bare loop; returns the time per iteration and the last logged loss."""
    torch.manual_seed(0)
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate(), momentum=0.9)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0)
    model.train()
    iteration, last_loss = 0, float("nan")
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for inputs, labels in loader:
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
            if iteration % LOG_INTERVAL == 0:
                last_loss = loss.item()
    torch.save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}, out_dir / "plain.pth")
    timing = Timing((time.perf_counter() - start) / iteration, (time.process_time() - start_cpu) / iteration)
    return timing, last_loss


def cockpit_round(dataset: TensorDataset, epochs: int, out_dir: Path, default_hooks: dict[str, Any],
                  profiler: cProfile.Profile | None = None) -> tuple[Timing, float, Runner]:
    """Train with ``Runner``; returns the time per iteration in the loop, the one-time seconds, the runner."""
    begin = time.perf_counter()
    stopwatch = Stopwatch()
    default_hooks = dict(default_hooks)
    health_guard = default_hooks.pop("health_guard", True)
    runner = Runner(
        model=dict(type=MLP),
        work_dir=out_dir / "work",
        train_dataloader=dict(dataset=dataset, batch_size=BATCH, num_workers=0,
                              sampler=dict(type="DefaultSampler", shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=learning_rate(), momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=default_hooks,
        custom_hooks=[stopwatch],
        randomness=dict(seed=0),
        log_to_console=False,
        health_guard=health_guard,
    )
    if profiler is not None:
        profiler.enable()
    runner.train()
    if profiler is not None:
        profiler.disable()
    iterations = runner.iter
    assert iterations == epochs * SAMPLES // BATCH, iterations
    assert default_hooks.get("checkpoint") is None or (Path(runner.work_dir) / f"epoch_{epochs}.pth").is_file()
    loop = stopwatch.ended - stopwatch.started
    timing = Timing(loop / iterations, (stopwatch.ended_cpu - stopwatch.started_cpu) / iterations)
    return timing, time.perf_counter() - begin - loop, runner


def print_hook_times(runner: Runner) -> None:
    """Each hook's time per iteration at each stage, as the runner's dispatcher measured it."""
    print("\nhook time per iteration in the default-hooks run (measured by the dispatcher):")
    timings = sorted(runner.message_hub.hook_timings().items(), key=lambda item: -item[1][1])
    for (stage, hook), (calls, seconds) in timings:
        if seconds / runner.iter >= 0.05e-6:
            print(f"  {seconds / runner.iter * 1e6:7.2f} us  {stage}: {hook} ({calls} calls)")


def profile_cockpit(dataset: TensorDataset, epochs: int, top: int = 30) -> None:
    """cProfile one Cockpit run and print where the time of an iteration goes."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        cockpit_round(dataset, epochs, Path(folder), VARIANTS["cockpit"], profiler)
    iterations = epochs * SAMPLES // BATCH
    print(f"\ncProfile of one cockpit run, per iteration ({iterations} iterations; the profiler "
          "inflates Python-heavy code), by own time:")
    print(f"{'own us':>8} {'cum us':>8} {'calls':>6}  function")
    rows = sorted(pstats.Stats(profiler).stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for (filename, line, name), (_, calls, own, cumulative, _) in rows:
        where = f" ({Path(filename).parent.name}/{Path(filename).name}:{line})" if line else ""
        print(f"{own / iterations * 1e6:8.1f} {cumulative / iterations * 1e6:8.1f} "
              f"{calls / iterations:6.2f}  {name}{where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of plain + cockpit (default 5)")
    parser.add_argument("--epochs", type=int, default=16, help="epochs a round, 128 iterations each (default 16)")
    parser.add_argument("--hidden", type=int, default=HIDDEN,
                        help=f"width of the hidden layer (default {HIDDEN}): a heavier step, the same Cockpit work")
    parser.add_argument("--breakdown", action="store_true", help="also time Cockpit with parts switched off")
    parser.add_argument("--profile", action="store_true", help="also cProfile one Cockpit run")
    args = parser.parse_args()

    torch.set_num_threads(1)
    MLP.hidden = args.hidden
    dataset = make_dataset()
    variants = list(VARIANTS) if args.breakdown else ["cockpit"]
    sides = ["plain", *variants]
    iterations = args.epochs * SAMPLES // BATCH
    print(f"MLP {FEATURES}->{args.hidden}->{CLASSES}, batch {BATCH}, {iterations} iterations a round, "
          f"{args.rounds} rounds, torch {torch.__version__}, 1 thread")
    timings: dict[str, list[Timing]] = {side: [] for side in sides}
    setups: list[float] = []
    first_runner: Runner | None = None
    with tempfile.TemporaryDirectory() as folder:
        # One unmeasured round each: imports, allocator and file-system caches warm up.
        plain_round(dataset, 1, Path(folder))
        cockpit_round(dataset, 1, Path(folder) / "warm-up", VARIANTS["cockpit"])
        for index in range(args.rounds):
            round_dir = Path(folder) / f"round{index}"
            round_dir.mkdir()
            # Alternate the order, so a drift in machine load hits every side alike.
            for number, side in enumerate(sides if index % 2 == 0 else sides[::-1]):
                if side == "plain":
                    timing, loss = plain_round(dataset, args.epochs, round_dir)
                    assert loss < LEARNED, f"the plain loop did not learn: loss {loss}"
                else:
                    timing, setup, runner = cockpit_round(dataset, args.epochs, round_dir / str(number),
                                                          VARIANTS[side])
                    if side == "cockpit":
                        loss = runner.message_hub.get_scalar("train/loss").current()
                        assert loss < LEARNED, f"cockpit did not learn: loss {loss}"
                        setups.append(setup)
                        first_runner = first_runner or runner
                timings[side].append(timing)
            print(f"round {index + 1}: " + "   ".join(
                f"{side.strip()} {timings[side][-1].wall * 1e6:6.1f} us" for side in ("plain", "cockpit")))

    plain_wall = statistics.median(t.wall for t in timings["plain"])
    plain_cpu = statistics.median(t.cpu for t in timings["plain"])
    print(f"\n{'median per iteration':24} {'wall us':>8} {'ratio':>7} {'CPU us':>8} {'ratio':>7}")
    for side in sides:
        wall = statistics.median(t.wall for t in timings[side])
        cpu = statistics.median(t.cpu for t in timings[side])
        print(f"{side:24} {wall * 1e6:8.1f} {wall / plain_wall:6.3f}x {cpu * 1e6:8.1f} {cpu / plain_cpu:6.3f}x")
    cockpit_wall = statistics.median(t.wall for t in timings["cockpit"])
    ratio = cockpit_wall / plain_wall
    print(f"\ncockpit overhead: {(cockpit_wall - plain_wall) * 1e6:+.1f} us/iter; one-time cost outside the "
          f"loop (runner, run folder, writers): {statistics.median(setups) * 1e3:.1f} ms a run")
    print(f"ratio cockpit/plain (wall): {ratio:.3f}x, target <= {TARGET}x: "
          f"{'OK' if ratio <= TARGET else 'OVER TARGET'}")
    if args.breakdown:
        print_hook_times(first_runner)
    if args.profile:
        profile_cockpit(dataset, args.epochs)


if __name__ == "__main__":
    main()
