"""Command agreement: what a distributed run pays to let every rank apply a command at the same iteration.

In a distributed run, ``Runner.safe_point`` makes all ranks agree, every ~100 ms of
training, on rank 0's queued commands and any rank's stop or save request: one
all-reduce of four numbers (plus a broadcast when there are commands). This
benchmark trains the same run with the agreement on and with it switched off
(``env_cfg=dict(command_agreement=False)``, which also means commands never reach
the run) on 2 gloo processes, and compares the throughput.

The run: a tiny MLP (64 -> 128 -> 10, batch 32 per rank, SGD with momentum) on
in-memory data (4,096 samples, ``InfiniteSampler``), iteration-based for
``--iters`` iterations, one torch thread per process, the default hooks without
the LoggerHook and the CheckpointHook (no file I/O in the timed loop, on either
side), no channel server.

Both processes are started once, with ``torch.multiprocessing`` and
``init_process_group('gloo')`` on a free port; each round then builds a fresh
``Runner`` per setting (``launcher='pytorch'`` joins the existing group), with the
two settings in alternating order so both see the same machine load. What is timed,
on rank 0 by a hook, is the training loop: from the first ``before_train_iter`` to
``after_train``. The overhead is the ratio of the median throughputs (and, beside
it, the median of the per-round ratios). Target: under 2%.

Reading it: every iteration already has two collectives (DDP's gradient all-reduce
and the all-reduce of the logged losses). With a model this small the iteration is
mostly collective latency, so one more collective every N iterations costs about
1/(2N) of the throughput; the script prints that estimate beside the measurement,
and the share of the loop rank 0 spends inside the agreement's all-reduce. On a
busy machine wall times vary by tens of percent from run to run: compare the
per-round ratios, and rerun when other programs load the cores.

Run: ``.venv/bin/python benchmarks/distributed.py [--rounds 11] [--iters 2000]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from cockpit import BaseModel, Hook, Priority, Runner

WORLD = 2
SAMPLES, FEATURES, HIDDEN, CLASSES, BATCH = 4096, 64, 128, 10, 32
TARGET_PERCENT = 2.0


class MLP(BaseModel):
    """64 -> 128 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        return logits


def make_dataset() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    labels = (inputs @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(dim=1)
    return TensorDataset(inputs, labels)


class Stopwatch(Hook):
    """The training loop's wall time: the first ``before_train_iter`` to ``after_train``."""

    priority = Priority.HIGHEST

    def __init__(self) -> None:
        self.started: float | None = None
        self.ended = 0.0

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch=None) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def after_train(self, runner: Runner) -> None:
        self.ended = time.perf_counter()


def count_agreements() -> list[float]:
    """Count the agreement's all-reduces (the steering's only use of ``all_reduce_max``) and time them.

    Returns ``[calls, seconds inside them]``, updated as the runs go.
    """
    import cockpit.steering as steering_module

    counter = [0, 0.0]
    original = steering_module.all_reduce_max

    def counted(values: list[float]) -> list[float]:
        started = time.perf_counter()
        try:
            return original(values)
        finally:
            counter[0] += 1
            counter[1] += time.perf_counter() - started

    steering_module.all_reduce_max = counted
    return counter


def train_once(agreement: bool, iters: int, dataset: TensorDataset, folder: Path) -> dict:
    stopwatch = Stopwatch()
    runner = Runner(
        model=dict(type=MLP),
        work_dir=folder,
        train_dataloader=dict(dataset=dataset, batch_size=BATCH, sampler=dict(type="InfiniteSampler", shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(logger=None, checkpoint=None),
        custom_hooks=[stopwatch],
        launcher="pytorch",
        env_cfg=dict(command_agreement=agreement, dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=0),
        log_to_console=False,
    )
    runner.train()
    assert runner.iter == iters, runner.iter
    # The first iteration is not in the interval: iters - 1 iterations were timed.
    return {"seconds": stopwatch.ended - stopwatch.started, "iterations": iters - 1}


def worker(rank: int, port: int, rounds: int, iters: int, warmup: int, folder: str, results: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    agreements = count_agreements()
    dataset = make_dataset()
    work = Path(folder) / f"rank{rank}"
    try:
        for agreement in (True, False):  # warm-up: imports, allocator, gloo connections
            train_once(agreement, warmup, dataset, work)
        for index in range(rounds):
            order = (True, False) if index % 2 == 0 else (False, True)
            for agreement in order:
                calls, inside = agreements
                result = train_once(agreement, iters, dataset, work)
                result.update(round=index, agreement=agreement, agreements=agreements[0] - calls,
                              inside=agreements[1] - inside)
                if rank == 0:
                    with open(results, "a") as file:
                        file.write(json.dumps(result) + "\n")
                    rate = result["iterations"] / result["seconds"]
                    print(f"  round {index + 1}/{rounds}  agreement {'on ' if agreement else 'off'}  "
                          f"{rate:8.1f} it/s  ({result['agreements']} agreements)", flush=True)
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's teardown, where torch's gloo threads now and then abort the
    # process ("terminate called without an active exception") after everything is done.
    sys.stdout.flush()
    os._exit(0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11, help="rounds of on + off (default 11)")
    parser.add_argument("--iters", type=int, default=2000, help="iterations a run (default 2000)")
    parser.add_argument("--warmup", type=int, default=300, help="iterations of the untimed warm-up runs")
    args = parser.parse_args()

    print(f"command agreement on 2 gloo processes: {args.rounds} rounds of {args.iters} iterations each way, "
          f"1 torch thread per process, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.jsonl"
        mp.spawn(worker, args=(free_port(), args.rounds, args.iters, args.warmup, folder, str(results)),
                 nprocs=WORLD, join=True)
        rows = [json.loads(line) for line in results.read_text().splitlines()]

    def rates(agreement: bool) -> list[float]:
        return [r["iterations"] / r["seconds"] for r in rows if r["agreement"] is agreement]

    on, off = rates(True), rates(False)
    by_round = {(r["round"], r["agreement"]): r["iterations"] / r["seconds"] for r in rows}
    paired = [by_round[(i, False)] / by_round[(i, True)] for i in range(args.rounds)]
    agreements = statistics.median(r["agreements"] for r in rows if r["agreement"])
    median_on, median_off = statistics.median(on), statistics.median(off)
    overhead = (median_off / median_on - 1) * 100
    print()
    print(f"{'':16}{'median it/s':>12}{'min':>10}{'max':>10}")
    print(f"{'agreement off':16}{median_off:12.1f}{min(off):10.1f}{max(off):10.1f}")
    print(f"{'agreement on':16}{median_on:12.1f}{min(on):10.1f}{max(on):10.1f}")
    inside = statistics.median(r["inside"] / r["seconds"] * 100 for r in rows if r["agreement"])
    print(f"agreements a run: {agreements:.0f} (one every {args.iters / max(agreements, 1):.0f} iterations, "
          f"~{median_on / max(args.iters / max(agreements, 1), 1):.0f} per second)")
    print(f"estimate if every collective costs the same: +{agreements / (2 * args.iters) * 100:.2f}% "
          "(agreements / the 2 collectives every iteration has)")
    print(f"time rank 0 spends inside the agreement's all-reduce: {inside:.2f}% of the loop (an upper bound: "
          "part of it is waiting for the other rank, which the next gradient all-reduce would wait anyway)")
    print(f"per-round ratios off/on: {', '.join(f'{p:.3f}' for p in paired)} "
          f"(median overhead {(statistics.median(paired) - 1) * 100:+.2f}%)")
    verdict = "within" if overhead < TARGET_PERCENT else "OVER"
    print(f"overhead of the agreement: {overhead:+.2f}% of throughput ({verdict} the {TARGET_PERCENT:.0f}% target)")


if __name__ == "__main__":
    main()
