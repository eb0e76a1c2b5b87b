"""The health guard's cost per step: the same Cockpit run with and without ``HealthGuardHook``.

Both sides are ``loop_overhead.py``'s Cockpit run (the tiny MLP, batch 32, 128 iterations an
epoch, the default hooks with a JSON-only logger every 10 iterations, one checkpoint at the end),
in one process with one torch thread; one side adds the guard as a config with
``health_guard=dict()`` would (its defaults: non-finite and spike checks every step, the stall
watcher thread). Rounds alternate the order, and the medians of the per-iteration wall times are
compared. The difference of two ~300 us loops is noisy, so the guard's own time per iteration,
as the runner's dispatcher measures it around each hook call (``after_train_iter``), is printed
beside it, with that of a hook whose ``after_train_iter`` does nothing (the floor any hook pays
in a real loop, where caches are cold after the backward pass), and the guard's cost in a warm
loop of its own (a fresh hub value each call). Target: <= 5 us a step on the CPU.

Run: ``.venv/bin/python benchmarks/guard.py [--rounds 7] [--epochs 8]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import BATCH, LOG_INTERVAL, MLP, SAMPLES, Stopwatch, make_dataset  # noqa: E402

from cockpit import Hook, Runner  # noqa: E402
from cockpit.hooks.health import HealthGuardHook  # noqa: E402

TARGET_US = 5.0
HOOKS = dict(logger=dict(type="LoggerHook", interval=LOG_INTERVAL, backends=("json",)),
             checkpoint=dict(type="CheckpointHook", interval=-1, save_last=True))


class Nothing(Hook):
    """A hook that does nothing after each step: what calling any hook costs in the loop."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        pass


def timed_round(dataset, epochs: int, out_dir: Path, guard: bool) -> tuple[float, float, float]:
    """Seconds per iteration of the loop, the guard's own and the empty hook's seconds per iteration."""
    stopwatch = Stopwatch()
    hooks = [stopwatch, HealthGuardHook(), Nothing()] if guard else [stopwatch]
    runner = Runner(model=dict(type=MLP), work_dir=out_dir / "work",
                    train_dataloader=dict(dataset=dataset, batch_size=BATCH, num_workers=0,
                                          sampler=dict(type="DefaultSampler", shuffle=True)),
                    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
                    train_cfg=dict(by_epoch=True, max_epochs=epochs), default_hooks=HOOKS, custom_hooks=hooks,
                    randomness=dict(seed=0), log_to_console=False, health_guard=None)  # the guard is ours
    runner.train()
    iterations = runner.iter
    assert iterations == epochs * SAMPLES // BATCH, iterations
    assert runner.message_hub.status == "finished", runner.message_hub.status
    timings = runner.message_hub.hook_timings()
    own = sum(seconds for (stage, hook), (_, seconds) in timings.items()
              if hook == "HealthGuardHook" and "train_iter" in stage)
    empty = timings.get(("after_train_iter", "Nothing"), (0, 0.0))[1]
    return (stopwatch.ended - stopwatch.started) / iterations, own / iterations, empty / iterations


def warm_cost(dataset, out_dir: Path, calls: int = 20000) -> float:
    """Seconds per ``after_train_iter`` of the guard called in a loop of its own, with a fresh loss each call."""
    import random
    import timeit

    runner = Runner(model=dict(type=MLP), work_dir=out_dir,
                    train_dataloader=dict(dataset=dataset, batch_size=BATCH, num_workers=0),
                    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)), train_cfg=dict(max_epochs=1),
                    custom_hooks=[guard := HealthGuardHook()], log_to_console=False, health_guard=None)
    runner.train_loop  # noqa: B018 - built, as in a run
    guard.before_train(runner)
    hub = runner.message_hub

    def fresh() -> dict[str, float]:
        value = 0.5 + random.random() * 0.01
        hub.update_scalar("train/loss", value, 0)
        return {"loss": value}

    def step() -> None:
        # A step: the guard's own after_train_iter, and the values the RuntimeInfoHook hands it.
        guard.after_train_iter(runner, 0)
        guard._read_values(runner, 0, fresh())

    try:
        base = timeit.timeit(fresh, number=calls)
        both = timeit.timeit(step, number=calls)
    finally:
        guard.after_run(runner)
    return (both - base) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of without + with (default 7)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs a round, 128 iterations each (default 8)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    dataset = make_dataset()
    print(f"tiny MLP, batch {BATCH}, {args.epochs * SAMPLES // BATCH} iterations a round, {args.rounds} rounds, "
          f"torch {torch.__version__}, 1 thread")
    without: list[float] = []
    with_guard: list[float] = []
    own: list[float] = []
    empty: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        timed_round(dataset, 1, Path(folder) / "warm-a", False)
        timed_round(dataset, 1, Path(folder) / "warm-b", True)
        warm = warm_cost(dataset, Path(folder) / "warm-loop")
        for index in range(args.rounds):
            order = (False, True) if index % 2 == 0 else (True, False)
            for guard in order:
                step, guard_own, nothing = timed_round(dataset, args.epochs, Path(folder) / f"r{index}-{guard}",
                                                       guard)
                (with_guard if guard else without).append(step)
                if guard:
                    own.append(guard_own)
                    empty.append(nothing)
            print(f"round {index + 1}: without {without[-1] * 1e6:6.1f} us   with {with_guard[-1] * 1e6:6.1f} us   "
                  f"guard's own {own[-1] * 1e6:5.2f} us")
    base, guarded, mine, floor = (statistics.median(v) for v in (without, with_guard, own, empty))
    print(f"\nmedian per iteration: without {base * 1e6:.1f} us, with {guarded * 1e6:.1f} us: "
          f"{(guarded - base) * 1e6:+.2f} us ({guarded / base:.3f}x)")
    print(f"the guard's own time per step (dispatcher-measured): {mine * 1e6:.2f} us; an empty hook's: "
          f"{floor * 1e6:.2f} us; the guard above that floor: {(mine - floor) * 1e6:.2f} us")
    print(f"the guard in a warm loop of its own: {warm * 1e6:.2f} us a step")
    print(f"target <= {TARGET_US} us a step (dispatcher-measured, in the loop): "
          f"{'OK' if mine * 1e6 <= TARGET_US else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
