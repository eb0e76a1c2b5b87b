"""Remote-channel benchmarks, each measured against a baseline in the same run.

1. Loop overhead of serving: a tiny MLP (64->128->10, batch 32, in-memory data, one
   torch thread) trained by ``Runner`` with the default hooks, ``serve=False`` and no
   view, against ``serve=True`` with one ``RunClient`` in another process following the
   event stream as fast as it can. 7 rounds of 3,000 timed iterations (after 200 warm-up
   ones), alternating ABBA; the ratio of the median throughputs is the target (>= 0.98x).
   Printed beside it, because on a shared machine wall time is mostly the scheduler's
   doing: how much of the wall time the training thread waited for a CPU (Linux
   schedstat), the ratio without those waits, CPU-time ratios, the event mix, garbage
   collections, and a model of the cost from CPU times that the scheduler cannot blur
   (the server thread's CPU per iteration and the cost of building events, against the
   best plain iteration).
2. Event rate: ``hub.update_scalar`` 1,000,000 times in a loop from one thread while a
   ``ChannelServer`` serves the hub and a client in another process counts what reaches
   it (and its re-syncs), 3 rounds. Reports events/s delivered and the fraction lost,
   next to the bare hub's publish rate with nobody listening, the publisher's rate less
   its waits for a CPU, the CPU each event costs in both processes, and the part of it
   that is garbage collection. Target: 100k events/s delivered.
3. Command latency: a run in another process whose iterations take a known time (a
   hook sleeps 20 ms), serving; the client sends a hook-declared no-op command 30 times
   and times ``client.command(...)`` until it returns ``done=True``, split into send ->
   server thread -> applied at the safe point -> the client sees it done (CLOCK_MONOTONIC
   is system-wide, so the run's timestamps compare with the client's). It also times the
   same command followed through the event stream (``CommandFinished``), as a view
   does. Target: median and p95 under one iteration + 50 ms.

4. Snapshots do not stall training: the same tiny MLP, served, whose hub first gets a long
   history (8 series of 6,000 points, what a snapshot of a long run carries), trained with
   and without a client in another process asking for full snapshots back to back as fast as
   the run answers. 7 ABBA rounds of 3,000 timed iterations; the ratio of the median
   throughputs is the target (>= 0.9x). Also printed: snapshots per second served and the
   time the hub's lock was held for each (``MessageHub.snapshot``'s copy under the lock).

Options: ``--quick`` (a smoke test: fewer rounds and events), ``--only overhead|rate|latency|snapshot``
(repeatable), ``--gc-freeze`` (``gc.freeze()`` after start-up, which takes torch's ~165k
objects out of full collections: shows what those collections cost).

Run: ``.venv/bin/python benchmarks/channel.py [--quick] [--only rate|snapshot] [--gc-freeze]``
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit import BaseModel, Hook, MessageHub, Runner  # noqa: E402
from cockpit.channel.auth import ConnectionError_  # noqa: E402
from cockpit.channel.client import RunClient  # noqa: E402
from cockpit.channel.server import ChannelServer  # noqa: E402
from cockpit.commands import Command  # noqa: E402

FINAL = ("finished", "stopped", "failed")
BATCH = 32


# --- workload -------------------------------------------------------------------------------
class MLP(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        return logits


def make_data(n_batches: int, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    n = n_batches * BATCH
    return TensorDataset(torch.randn(n, 64, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def make_runner(work_dir: str, dataset: TensorDataset, train_cfg: dict, **kwargs: Any) -> Runner:
    return Runner(
        model=MLP(), work_dir=work_dir, log_to_console=False,
        train_dataloader=dict(dataset=dataset, batch_size=BATCH),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        train_cfg=train_cfg, randomness=dict(seed=0), **kwargs,
    )


def wait_for_connection(run_dir: Path, timeout: float = 60.0) -> RunClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return RunClient.connect(run_dir)
        except ConnectionError_:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


# --- the view process -----------------------------------------------------------------------
def view_worker(jobs: mp.Queue, results: mp.Queue) -> None:
    """A separate process that follows runs for the parent: one job at a time, until told to quit.

    A job is ``(run_dir, end_key)``: connect, snapshot, say ``attached``, then take events as
    fast as ``RunClient.poll_events`` delivers them until the run reaches a final status (or
    the hub's info ``end_key`` is set), and send back what arrived.
    """
    torch.set_num_threads(1)
    while True:
        job = jobs.get()
        if job is None:
            return
        run_dir, end_key = job
        client = wait_for_connection(Path(run_dir))
        client.snapshot()
        cpu = time.process_time()
        results.put(("attached", client.seq))
        received = 0
        kinds: dict[str, int] = {}
        first = last = None
        ended = timed_out = False
        quiet_since = time.monotonic()
        while not ended:
            events = client.poll_events(0.05)
            now = time.monotonic()
            if not events:
                if now - quiet_since > 20:
                    timed_out = True
                    break
                continue
            quiet_since = now
            if first is None:
                first = now
            last = now
            for event in events:
                kind = event["t"]
                if kind == "Snapshot":
                    snap = event["snapshot"]
                    ended = snap["status"] in FINAL or (end_key is not None and end_key in snap["info"])
                    continue
                received += 1
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind == "StatusChanged" and event["status"] in FINAL:
                    ended = True
                elif kind == "InfoUpdated" and end_key is not None and event["key"] == end_key:
                    ended = True
        results.put(("done", {"received": received, "resyncs": client.resyncs, "first": first, "last": last,
                              "seq": client.seq, "timed_out": timed_out, "cpu": time.process_time() - cpu,
                              "kinds": kinds}))
        client.close()


class View:
    """The parent's handle on the view process."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self.jobs, self.results = context.Queue(), context.Queue()
        self.process = context.Process(target=view_worker, args=(self.jobs, self.results), daemon=True)
        self.process.start()

    def follow(self, run_dir: Path, end_key: str | None = None) -> None:
        self.jobs.put((str(run_dir), end_key))

    def wait(self, what: str, timeout: float = 120.0) -> Any:
        try:
            kind, value = self.results.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the view process sent no {what!r} in {timeout:.0f} s") from None
        if kind != what:
            raise RuntimeError(f"expected {what!r} from the view process, got {kind!r}")
        return value

    def close(self) -> None:
        self.jobs.put(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()


# --- 1. loop overhead -----------------------------------------------------------------------
class Span(Hook):
    """Times iterations ``warmup`` .. ``total`` - 1 (last in every stage)."""

    priority = "LOWEST"

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        self.start = self.end = (0.0,) * 6
        self.gc = GcClock()

    @staticmethod
    def clocks() -> tuple[float, ...]:
        wall = time.perf_counter()
        channel = next((t.native_id for t in threading.enumerate() if t.name == "cockpit-channel"), None)
        return (wall, wall - runqueue_wait(), time.process_time(), time.thread_time(),
                thread_cpu(channel) if channel is not None else 0.0, zmq_threads_cpu())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if batch_idx == self.warmup - 1:
            gc.callbacks.append(self.gc)
            self.start = self.clocks()
        elif batch_idx == self.total - 1:
            self.end = self.clocks()
            gc.callbacks.remove(self.gc)

    def rates(self) -> tuple[float, ...]:
        """Iterations per second of: wall time; wall time less the training thread's waits for a CPU;
        the process's CPU time (all threads); the training thread's CPU time. Then the CPU seconds
        per iteration of the channel's thread and of libzmq's I/O threads."""
        n = self.total - self.warmup
        spans = [e - s for s, e in zip(self.start, self.end, strict=True)]
        return (*(n / span for span in spans[:4]), spans[4] / n, spans[5] / n)


def thread_cpu(native_id: int) -> float:
    """CPU seconds of one thread of this process (Linux schedstat; 0 elsewhere)."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat") as file:
            return int(file.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def zmq_threads_cpu() -> float:
    """CPU seconds of libzmq's background threads (named ``ZMQbg/...``) in this process."""
    total = 0.0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as file:
                if file.read().startswith("ZMQbg"):
                    total += thread_cpu(int(tid))
        except OSError:
            continue
    return total


class GcClock:
    """A ``gc.callbacks`` entry: how many collections of each generation, and their CPU seconds."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.cpu = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.count[info["generation"]] += 1
            self.cpu[info["generation"]] += time.thread_time() - self._started


def runqueue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere).

    On a shared machine this is where most of the noise is: other people's processes, not
    Cockpit. Wall time less this wait still counts waiting for the GIL and for I/O.
    """
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class WaitForView(Hook):
    """Holds the run at ``before_train`` until the view process has attached."""

    def __init__(self, view: View) -> None:
        self.view = view

    def before_train(self, runner):
        self.view.wait("attached")


def overhead_round(view: View | None, dataset: TensorDataset, warmup: int) -> tuple[tuple[float, ...], dict | None]:
    """One training run: ``Span.rates()``, and what the view saw (with the run's GC counts)."""
    total = len(dataset) // BATCH
    span = Span(warmup, total)
    hooks: list[Hook] = [span] + ([WaitForView(view)] if view is not None else [])
    with tempfile.TemporaryDirectory() as folder:
        runner = make_runner(folder, dataset, dict(by_epoch=True, max_epochs=1), custom_hooks=hooks,
                             serve=view is not None)
        if view is not None:
            view.follow(runner.log_dir)
        runner.train()
        seen = view.wait("done") if view is not None else None
    if seen is not None:
        seen["gc"] = span.gc
    return span.rates(), {"gc": span.gc} if seen is None else seen


def event_building_cost(n: int = 100_000, repeats: int = 5) -> float:
    """CPU seconds a listener adds to one ``update_scalar`` (the event object and its queueing)."""

    def cost(listen: bool) -> float:
        best = float("inf")
        for _ in range(repeats):
            hub = MessageHub("cost")
            subscription = hub.subscribe(maxlen=n) if listen else None
            update = hub.update_scalar
            start = time.thread_time()
            for i in range(n):
                update("train/loss", 0.5, i)
                if listen and not i % 1000:
                    subscription.queue.clear()  # as the server thread drains it every few ms
            best = min(best, time.thread_time() - start)
        return best / n

    return max(0.0, cost(True) - cost(False))


def bench_overhead(view: View, rounds: int, iters: int, warmup: int = 200) -> float:
    dataset = make_data(iters + warmup)
    overhead_round(None, dataset, warmup)  # warm caches, imports, allocator
    plain: list[tuple[float, ...]] = []
    served: list[tuple[float, ...]] = []
    seen: list[dict] = []
    plain_gc: list[dict] = []
    for index in range(rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        for serve in order:
            rates, info = overhead_round(view if serve else None, dataset, warmup)
            (served if serve else plain).append(rates)
            (seen if serve else plain_gc).append(info)

    def ratio(column: int) -> tuple[float, float, float]:
        a = statistics.median(r[column] for r in plain)
        b = statistics.median(r[column] for r in served)
        return a, b, b / a

    def waiting(runs: list[tuple[float, ...]]) -> str:
        return f"{1 - statistics.median(r[0] / r[1] for r in runs):.0%}"

    def gcs(infos: list[dict]) -> str:
        count = [sum(i["gc"].count[g] for i in infos) for g in range(3)]
        cpu = [sum(i["gc"].cpu[g] for i in infos) for g in range(3)]
        full = f" (full ones {cpu[2] / count[2] * 1000:.0f} ms CPU each)" if count[2] else ""
        return (f"{count[0] / len(infos):.0f}/{count[1] / len(infos):.0f}/{count[2] / len(infos):.1f} gen0/1/2 "
                f"collections per run{full}, {sum(cpu) / (len(infos) * iters) * 1e6:.0f} us/iter")

    a, b, wall = ratio(0)
    paired = ", ".join(f"{s[0] / p[0]:.2f}" for p, s in zip(plain, served, strict=True))
    print(f"loop overhead: {iters} iters x {rounds} rounds; no view {a:.0f} it/s, serving + 1 view in another "
          f"process {b:.0f} it/s; ratio {wall:.3f}x (target >= 0.98x)")
    print(f"    share of wall time the training thread waited for a CPU: no view {waiting(plain)}, serving "
          f"{waiting(served)} (load {os.getloadavg()[0]:.1f}); per-round ratios {paired}")

    best_plain, best_served = max(r[2] for r in plain), max(r[2] for r in served)
    print(f"    less the training thread's CPU waits: {ratio(1)[2]:.3f}x; by CPU time: training process (all "
          f"threads) {ratio(2)[2]:.3f}x, training thread {ratio(3)[2]:.3f}x; best round's process CPU per iter "
          f"{1e6 / best_plain:.0f} us vs {1e6 / best_served:.0f} us = {best_served / best_plain:.3f}x")

    events_per_iter = statistics.median(s["seq"] for s in seen) / (iters + warmup)
    kinds = seen[-1]["kinds"]
    mix = ", ".join(f"{kind} {count / (iters + warmup):.1f}"
                    for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]) if count >= iters)
    view_cpu = statistics.median(s["cpu"] / s["received"] for s in seen) * 1e6
    print(f"    {events_per_iter:.0f} events/iter ({mix}); the view spends {view_cpu:.1f} us CPU/event; "
          f"{sum(s['resyncs'] for s in seen)} resyncs")

    # A model of the cost that the scheduler cannot blur: the extra CPU per iteration in the
    # channel's thread (measured on that thread) and in the training thread (building and
    # queueing events, measured in a tight loop), against the best plain iteration; as if the
    # GIL serialized all of it (the worst case), or none of the channel thread's part.
    server = statistics.median(r[4] for r in served)
    zmq_io = statistics.median(r[5] for r in served)
    building = events_per_iter * event_building_cost()
    iteration = 1 / best_plain
    print(f"    modelled from CPU costs: channel thread {server * 1e6:.0f} us/iter (libzmq's I/O thread another "
          f"{zmq_io * 1e6:.0f}, beside it) + building events {building * 1e6:.0f} us/iter on a "
          f"{iteration * 1e6:.0f} us iteration -> {iteration / (iteration + server + building):.3f}x if the GIL "
          f"serializes it all (worst case), {iteration / (iteration + building):.3f}x if the channel thread ran "
          f"entirely beside it")
    print(f"    garbage collection in the training thread: no view {gcs(plain_gc)}; serving {gcs(seen)}")
    return wall


# --- 4. snapshots -----------------------------------------------------------------------------
SNAPSHOT_SERIES, SNAPSHOT_POINTS = 8, 6000


class LongHistory(Hook):
    """Gives the hub a long run's history before training starts, so each snapshot is a big one."""

    def before_train(self, runner):
        for index in range(SNAPSHOT_SERIES):
            for step in range(SNAPSHOT_POINTS):
                runner.message_hub.update_scalar(f"history/{index}", 1.0 / (step + 1), step)


def snapshot_worker(run_dir: str, started: Any, stop: Any, results: mp.Queue) -> None:
    """A client in its own process asking ``run_dir`` for full snapshots back to back until ``stop``."""
    client = wait_for_connection(Path(run_dir))
    count = 0
    started.set()
    began = time.monotonic()
    try:
        while not stop.is_set():
            client.snapshot()
            count += 1
    except ConnectionError_:
        pass  # the run ended between two requests
    results.put(count / (time.monotonic() - began))
    client.close()


class SnapshotFlood(Hook):
    """Starts the snapshot-looping process once the run serves, and stops it when training ends."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self.context, self.results = context, context.Queue()
        self.started, self.stop = context.Event(), context.Event()
        self.process: Any = None
        self.rate = 0.0

    def before_train(self, runner):
        self.process = self.context.Process(target=snapshot_worker, daemon=True,
                                            args=(str(runner.log_dir), self.started, self.stop, self.results))
        self.process.start()
        if not self.started.wait(120):
            raise RuntimeError("the snapshot client did not connect in 120 s")

    def after_train(self, runner):
        self.stop.set()
        self.rate = self.results.get(timeout=120)
        self.process.join(timeout=30)


def snapshot_round(flood: bool, dataset: TensorDataset, warmup: int) -> tuple[float, float, float]:
    """One served run: iterations per second (wall, CPU of the process), and snapshots per second."""
    span = Span(warmup, len(dataset) // BATCH)
    flooder = SnapshotFlood() if flood else None
    hooks: list[Hook] = [LongHistory(), span] + ([flooder] if flooder else [])
    with tempfile.TemporaryDirectory() as folder:
        runner = make_runner(folder, dataset, dict(by_epoch=True, max_epochs=1), custom_hooks=hooks, serve=True)
        runner.train()
    rates = span.rates()
    return rates[0], rates[2], flooder.rate if flooder else 0.0


def lock_hold_time(repeats: int = 20) -> tuple[float, float]:
    """Seconds ``MessageHub.snapshot`` holds the hub's lock, and its whole time, on the long history
    while four training series (3,000 points each) get a new point between two snapshots, as in training."""
    hub = MessageHub("lock")
    for index in range(SNAPSHOT_SERIES):
        for step in range(SNAPSHOT_POINTS):
            hub.update_scalar(f"history/{index}", 1.0 / (step + 1), step)
    training = ("train/loss", "train/lr", "train/time", "train/data_time")
    for step in range(3000):
        for key in training:
            hub.update_scalar(key, 1.0 / (step + 1), step)
    held: list[float] = []
    real_lock = hub._lock

    class TimedLock:
        def __enter__(self):
            real_lock.acquire()
            self.began = time.perf_counter()

        def __exit__(self, *exc):
            held.append(time.perf_counter() - self.began)
            real_lock.release()

    whole = []
    for step in range(3000, 3000 + repeats):
        for key in training:
            hub.update_scalar(key, 1.0 / (step + 1), step)
        hub._lock = TimedLock()
        held.clear()
        began = time.perf_counter()
        hub.snapshot(**({"shared": True} if hasattr(hub, "_rendered") else {}))  # as the channel asks (older hubs: no option)
        whole.append(time.perf_counter() - began)
        hub._lock = real_lock
    return max(held), statistics.median(whole)


def bench_snapshot(rounds: int, iters: int, warmup: int = 200) -> float:
    dataset = make_data(iters + warmup)
    snapshot_round(False, dataset, warmup)  # warm caches, imports, allocator
    quiet: list[tuple[float, float, float]] = []
    flooded: list[tuple[float, float, float]] = []
    for index in range(rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        for flood in order:
            (flooded if flood else quiet).append(snapshot_round(flood, dataset, warmup))
    a = statistics.median(r[0] for r in quiet)
    b = statistics.median(r[0] for r in flooded)
    cpu = statistics.median(r[1] for r in flooded) / statistics.median(r[1] for r in quiet)
    held, whole = lock_hold_time()
    paired = ", ".join(f"{f[0] / q[0]:.2f}" for q, f in zip(quiet, flooded, strict=True))
    print(f"snapshots: {iters} iters x {rounds} rounds, served, hub holding {SNAPSHOT_SERIES} x {SNAPSHOT_POINTS} "
          f"points; no snapshots {a:.0f} it/s, a client looping full snapshots {b:.0f} it/s; ratio {b / a:.3f}x "
          f"(target >= 0.9x); by process CPU time {cpu:.3f}x; per-round ratios {paired}")
    print(f"    snapshots served {statistics.median(r[2] for r in flooded):.1f}/s; MessageHub.snapshot() takes "
          f"{whole * 1000:.1f} ms, of which {held * 1000:.2f} ms under the hub's lock (load {os.getloadavg()[0]:.1f})")
    return b / a


# --- 2. event rate --------------------------------------------------------------------------
def bare_publish_rate(n: int) -> float:
    hub = MessageHub("bare")
    update = hub.update_scalar
    start = time.perf_counter()
    for i in range(n):
        update("train/loss", float(i), i)
    return n / (time.perf_counter() - start)


def rate_round(view: View, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        runner = Runner(model=MLP(), work_dir=folder, log_to_console=False)
        hub = runner.message_hub
        server = ChannelServer(runner, runner.control).start()
        try:
            view.follow(runner.log_dir, end_key="bench_done")
            view.wait("attached")
            first_seq = hub.seq
            update = hub.update_scalar
            clock = GcClock()
            gc.callbacks.append(clock)
            cpu = time.process_time()
            waited = runqueue_wait()
            start = time.monotonic()
            for i in range(n):
                update("train/loss", float(i), i)
            published = time.monotonic()
            waited = runqueue_wait() - waited
            hub.update_info("bench_done", n)
            seen = view.wait("done")
            while len(server.subscription.queue):  # the server has sent it all
                time.sleep(0.001)
            cpu = time.process_time() - cpu
            gc.callbacks.remove(clock)
        finally:
            server.stop()
    assert hub.seq - first_seq == n + 1
    return {
        "delivered": seen["received"] / (seen["last"] - start),
        "lost": 1 - seen["received"] / (n + 1),
        "publish": n / (published - start),
        "publish_given_cpu": n / (published - start - waited),
        "drain": seen["last"] - published,
        "resyncs": seen["resyncs"],
        "dropped_batches": server.dropped_batches,
        "run_cpu": cpu / n * 1e6,
        "view_cpu": seen["cpu"] / max(1, seen["received"]) * 1e6,
        "gc_full": clock.count[2],
        "gc_full_ms": clock.cpu[2] / max(1, clock.count[2]) * 1000,
        "gc_cpu": sum(clock.cpu) / n * 1e6,
    }


def bench_rate(view: View, rounds: int, n: int) -> float:
    bare, served = [], []
    for _ in range(rounds):
        bare.append(bare_publish_rate(n))
        served.append(rate_round(view, n))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in served)

    delivered = med("delivered")
    print(f"event rate: {n:,} update_scalar events x {rounds} rounds; delivered to a view in another process "
          f"{delivered / 1e3:.0f}k events/s, lost {med('lost'):.1%} ({sum(r['resyncs'] for r in served)} resyncs, "
          f"{sum(r['dropped_batches'] for r in served)} dropped batches) (target >= 100k events/s)")
    print(f"    publisher {med('publish') / 1e3:.0f}k/s while served vs bare hub, nobody listening, "
          f"{statistics.median(bare) / 1e3:.0f}k/s; view done {med('drain') * 1000:.0f} ms after the last publish; "
          f"publisher less its waits for a CPU {med('publish_given_cpu') / 1e3:.0f}k/s")
    print(f"    CPU per event: run process (publisher + server thread) {med('run_cpu'):.1f} us -> "
          f"{1e3 / med('run_cpu'):.0f}k events/s per core; view process {med('view_cpu'):.1f} us")
    print(f"    of which garbage collection {med('gc_cpu'):.1f} us ({med('gc_full'):.0f} full collections per run, "
          f"{med('gc_full_ms'):.0f} ms CPU each; --gc-freeze shows them without torch's objects)")
    print("    per round: " + "; ".join(f"{r['delivered'] / 1e3:.0f}k/s lost {r['lost']:.1%}" for r in served))
    return delivered


# --- 3. command latency ---------------------------------------------------------------------
_RECEIVED: dict[str, float] = {}  # in the training process: token -> when the server thread took the command


def _noop_received(args):
    # ``parse`` runs in the channel's thread as the request arrives. CLOCK_MONOTONIC is
    # system-wide on Linux, so these times compare with the client's.
    _RECEIVED[args[0]] = time.monotonic()
    return args


def _noop(runner: Runner, token: str) -> str:
    applied = time.monotonic()
    iteration = runner.message_hub.get_scalar("train/time").current()
    return f"{_RECEIVED.pop(token, float('nan'))!r} {applied!r} {iteration!r}"


class SlowIterations(Hook):
    """Makes every iteration take ``seconds`` longer, and offers the no-op command ``noop TOKEN``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        time.sleep(self.seconds)

    def commands(self) -> list[Command]:
        return [Command("noop", "do nothing; answer with when it arrived and when it ran", _noop, args=("token",),
                        parse=_noop_received)]


def latency_trainer(work_dir: str, timestamp: str, sleep: float) -> None:
    torch.set_num_threads(1)
    runner = make_runner(work_dir, make_data(64), dict(by_epoch=False, max_iters=10**7), serve=True,
                         timestamp=timestamp, custom_hooks=[SlowIterations(sleep)],
                         default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=-1, by_epoch=False)))
    runner.train()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {_pct(values, 0.95) * 1000:.1f} ms"


def bench_latency(samples: int, sleep: float) -> float:
    polled: dict[str, list[float]] = {"total": [], "to_server": [], "to_safe_point": [], "to_client": [], "iter": []}
    streamed: dict[str, list[float]] = {"total": [], "to_server": [], "to_safe_point": [], "to_client": []}

    def split(into: dict[str, list[float]], start: float, end: float, message: str) -> None:
        received, applied, iteration = (float(x) for x in message.split())
        into["total"].append(end - start)
        into["to_server"].append(received - start)
        into["to_safe_point"].append(applied - received)
        into["to_client"].append(end - applied)
        if "iter" in into:
            into["iter"].append(iteration)

    with tempfile.TemporaryDirectory() as folder:
        timestamp = "latency"
        context = mp.get_context("spawn")
        trainer = context.Process(target=latency_trainer, args=(folder, timestamp, sleep), daemon=True)
        trainer.start()
        client = None
        try:
            client = wait_for_connection(Path(folder))  # its newest live run (the run folder lies below the work dir)
            while client.ping()["seq"] < 500:  # let it settle into its iterations
                time.sleep(0.05)
            rng = random.Random(0)
            for index in range(samples):
                # 1) what the brief asks: client.command() until it returns done=True
                time.sleep(rng.uniform(0, 0.05))  # arrive at a random point of the iteration
                start = time.monotonic()
                answer = client.command("noop", f"p{index}")
                end = time.monotonic()
                assert answer["done"] and answer["outcome"] == "applied", answer
                split(polled, start, end, answer["message"])
                # 2) as a view does it: send, then watch the event stream for CommandFinished
                time.sleep(rng.uniform(0, 0.05))
                client.poll_events(0)  # drain what is there
                start = time.monotonic()
                request_id = client.command("noop", f"s{index}", wait=False)["id"]
                finished = None
                while finished is None and time.monotonic() - start < 10:
                    for event in client.poll_events(0.5):
                        if event["t"] == "CommandFinished" and event["id"] == request_id:
                            finished = event
                            end = time.monotonic()
                assert finished is not None and finished["outcome"] == "applied", finished
                split(streamed, start, end, finished["message"])
            iterations = client.snapshot()["scalars"]["train/time"]["values"][-1000:]
            client.command("stop", "nosave", wait=False)  # the run ends; nobody would answer the outcome
        finally:
            if client is not None:
                client.close()
            trainer.join(timeout=30)
            if trainer.is_alive():
                trainer.terminate()
    iteration = statistics.median(iterations)
    target = iteration + 0.050
    total = polled["total"]
    print(f"command latency: {samples} x noop, iteration {_ms(iterations)} (sleep {sleep * 1000:.0f} ms); "
          f"send -> done=True via client.command(): {_ms(total)} "
          f"(target < {target * 1000:.0f} ms = 1 iteration + 50 ms)")
    print(f"    split: send -> server thread {_ms(polled['to_server'])}; -> applied at the safe point "
          f"{_ms(polled['to_safe_point'])}; -> client sees done (polls every 20 ms) {_ms(polled['to_client'])}")
    print(f"    the iterations those commands waited on: {_ms(polled['iter'])}")
    print(f"    via the event stream (send, then CommandFinished), as a view: {_ms(streamed['total'])}; "
          f"applied -> event seen {_ms(streamed['to_client'])}")
    return max(statistics.median(total), _pct(total, 0.95)) / target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and events (a smoke test)")
    parser.add_argument("--only", choices=("overhead", "rate", "latency", "snapshot"), action="append")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after start-up (what-if: full collections without torch's objects)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    only = set(args.only or ("overhead", "rate", "latency", "snapshot"))
    rounds, iters, events, samples = (2, 500, 100_000, 5) if args.quick else (7, 3000, 1_000_000, 30)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min), {os.cpu_count()} CPUs")
    view = View() if only & {"overhead", "rate"} else None
    try:
        if "overhead" in only:
            bench_overhead(view, rounds, iters)
        if "rate" in only:
            bench_rate(view, max(2, rounds // 2), events)
    finally:
        if view is not None:
            view.close()
    if "latency" in only:
        bench_latency(samples, 0.020)
    if "snapshot" in only:
        bench_snapshot(rounds, iters)
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min)")


if __name__ == "__main__":
    main()
