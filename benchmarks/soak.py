"""Soak: a run flooded by hostile clients keeps >= 0.8x its iteration rate, and its memory stays bounded.

One training process (``cockpit run --no-tui --listen 127.0.0.1:PORT``, one torch thread, an MLP
64 -> 256 -> 256 -> 10 on random data, batch 64) trains through these phases while this process
samples it twice a second with a legitimate ``RunClient`` (iteration, request latency), psutil (its
resident memory) and /proc (CPU of its training thread and of its other threads, and how long the
training thread waited for a CPU):

    warm-up 10 s | quiet | busy loop 60 s | quiet | strangers 60 s | quiet | insiders 60 s | quiet

(quiet phases: 20 s each)

- busy loop: for comparison, a process that only spins: what any busy program costs the run;
- strangers: processes without the connection file, as fast as they can: raw TCP peers that skip
  the handshake and announce a 4 GB frame, then stream junk; ZeroMQ peers without the CURVE keys
  sending junk and requests signed with a guessed key; a subscriber with 100,000 subscriptions;
- insiders: processes holding the connection file (they pass CURVE), misbehaving at full speed:
  unsigned and wrongly signed messages, signed messages nested 30,000 deep (60 kB), stale, future
  and NaN times, the run's own replies and events sent back to it, frames beyond the size limit
  (the run drops the peer, which reconnects), subscriptions beyond the size limit.

Each flood's rate is compared with the mean of the two quiet phases beside it (the machine is
shared: load drifts), and with what the busy loop left of it. Targets: >= 0.8x, and the run's
memory during a flood within 64 MB of the quiet phase before it. The legitimate client must be
answered throughout, no channel thread may fail, and a command it sends at the end must be
applied.

The machines this runs on are shared, so the busy loop matters: what it takes from the run is
what any busy program takes (the scheduler's doing, not the channel's); "less waits" takes the
training thread's waits for a CPU out of the rates. ``--pin`` puts the run on one CPU and the
flooders (and this process) on the others, which attributes costs more sharply but lets the
machine's other load crowd onto the run's CPU. Every flooder stops by itself at the end of its
phase; all traffic is to 127.0.0.1.

Run: ``.venv/bin/python benchmarks/soak.py [--seconds 60] [--quiet 20] [--flooders 1] [--pin] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.channel.auth import (  # noqa: E402
    MAX_REQUEST,
    MAX_SUBSCRIPTION,
    PROTOCOL,
    REQUEST,
    ConnectionError_,
    Signer,
    new_key,
)
from cockpit.channel.client import RunClient  # noqa: E402

CONFIG = '''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from cockpit import BaseModel


class SoakNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        return logits


def soak_data(n=65536):
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 64, generator=generator), torch.randint(0, 10, (n,), generator=generator))


model = dict(type=SoakNet)
train_dataloader = dict(dataset=dict(type=soak_data), sampler=dict(type="InfiniteSampler", shuffle=True),
                        batch_size=64)
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9))
train_cfg = dict(by_epoch=False, max_iters=10 ** 9, val_interval=10 ** 9)
default_hooks = dict(logger=dict(type="LoggerHook", interval=100, backends=("json",)),
                     checkpoint=dict(type="CheckpointHook", interval=10 ** 9, by_epoch=False, save_last=False))
randomness = dict(seed=0)
'''


# --- the hostile clients (each a process of its own, stopping at its deadline) --------------------------
def zmtp_greeting(mechanism: bytes) -> bytes:
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def busy(connection: dict[str, Any], deadline: float, results: mp.Queue) -> None:
    """No network at all: a loop that only burns a CPU, to show what any busy process costs the run."""
    loops = 0
    while time.monotonic() < deadline:
        loops += 1
    results.put(("busy loop", {"loops": loops}))


def stranger(connection: dict[str, Any], deadline: float, results: mp.Queue) -> None:
    """Everything a peer without the connection file can do, in a loop, until ``deadline``."""
    host, port = connection["control"].removeprefix("tcp://").rsplit(":", 1)
    events_port = int(connection["events"].rsplit(":", 1)[1])
    key = new_key()  # a guess: the real one is in the file it does not have
    context = zmq.Context()
    counts = {"raw connections": 0, "zmq junk messages": 0}
    subscriber = context.socket(zmq.SUB)  # 100k subscriptions, held the whole time (it never gets in)
    subscriber.setsockopt(zmq.LINGER, 0)
    for n in range(100_000):
        subscriber.setsockopt(zmq.SUBSCRIBE, b"%06d" % n + b"x" * 64)
    subscriber.connect(connection["events"])
    junk = os.urandom(4096)
    claim = zmtp_greeting(b"NULL") + b"\x02" + (4 << 30).to_bytes(8, "big") + junk * 16
    while time.monotonic() < deadline:
        for target in (int(port), events_port):
            try:
                with socket.create_connection((host, target), timeout=1) as raw:
                    raw.sendall(claim)
                counts["raw connections"] += 1
            except OSError:
                counts["raw connections"] += 1  # refused or reset: the run hung up, as it should
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDHWM, 100)
        dealer.connect(connection["control"])
        for i in range(100):
            frames = Signer(key).pack(REQUEST, "command", {"name": "stop", "args": []}) if i % 2 else [junk[:i + 1]]
            try:
                dealer.send_multipart(frames, zmq.NOBLOCK)
                counts["zmq junk messages"] += 1
            except zmq.Again:
                break
        dealer.close()
    counts["bytes received"] = 0 if not subscriber.poll(0) else len(subscriber.recv())
    subscriber.close()
    context.term()
    results.put(("stranger", counts))


def insider(connection: dict[str, Any], deadline: float, results: mp.Queue) -> None:
    """A client holding the connection file that misbehaves in every way the channel must survive."""
    key = connection["key"]
    signer = Signer(key)
    curve = connection["curve"]
    context = zmq.Context()

    def curve_socket(kind: int) -> zmq.Socket:
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = curve["server_key"].encode()
        sock.curve_publickey = curve["public_key"].encode()
        sock.curve_secretkey = curve["secret_key"].encode()
        return sock

    def header(**fields: Any) -> bytes:
        return json.dumps({"v": PROTOCOL, "id": uuid.uuid4().hex, "time": time.time(), "dir": REQUEST,
                           "type": "ping", **fields}).encode()

    def forged(head: bytes, body: bytes) -> list[bytes]:
        return [signer.signature(head, body), head, body]

    deep = b"[" * 30_000 + b"]" * 30_000
    dealer = curve_socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 1000)
    dealer.connect(connection["control"])
    events = curve_socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"")
    events.connect(connection["events"])
    greedy = curve_socket(zmq.SUB)  # a subscription beyond the limit: the run drops it, it reconnects
    greedy.setsockopt(zmq.SUBSCRIBE, b"t" * (2 * MAX_SUBSCRIPTION))
    greedy.connect(connection["events"])
    counts = {"sent": 0, "answers": 0, "oversized": 0, "backpressure waits": 0}
    reply: list[bytes] | None = None
    batch: list[bytes] | None = None
    n = 0
    while time.monotonic() < deadline:
        n += 1
        kind = n % 10
        if kind == 0:
            frames = [os.urandom(64), os.urandom(200), os.urandom(200)]  # wrongly signed
        elif kind == 1:
            frames = [b"", header(), b"{}"]  # unsigned
        elif kind == 2:
            frames = forged(header(), deep)  # nested 30,000 deep, signed
        elif kind == 3:
            frames = forged(header(time=time.time() - 600), b"{}")  # stale
        elif kind == 4:
            frames = forged(header(time=time.time() + 59), b"{}")  # from the future
        elif kind == 5:
            frames = forged(header().replace(b'"time": ', b'"time": NaN, "t": '), b"{}")  # NaN time
        elif kind == 6 and reply is not None:
            frames = reply  # the run's own reply, sent back
        elif kind == 7 and batch is not None:
            frames = batch  # an event batch, sent back
        elif kind == 8 and n % 1000 == 8:
            frames = [b"x" * (MAX_REQUEST * 4)]  # beyond the limit: the run drops this peer
            counts["oversized"] += 1
        else:
            frames = signer.pack(REQUEST, "ping", {"request_id": str(n)})  # a good one: its reply is kept
        try:
            dealer.send_multipart(frames, zmq.NOBLOCK)
            counts["sent"] += 1
        except zmq.Again:
            counts["backpressure waits"] += 1
            dealer.poll(1)
        while dealer.poll(0):
            answer = dealer.recv_multipart()
            counts["answers"] += 1
            if answer and answer[0]:
                reply = answer
        while events.poll(0):
            batch = events.recv_multipart()
        greedy.poll(0)
    for sock in (dealer, events, greedy):
        sock.close()
    context.term()
    results.put(("insider", counts))


# --- measuring ----------------------------------------------------------------------------------------
def thread_times(pid: int) -> dict[str, float]:
    """Seconds of CPU of the process's main (training) thread and of all its other threads together
    (channel, ZeroMQ I/O, authenticator), and the seconds the main thread waited for a CPU."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"main_cpu": 0.0, "main_wait": 0.0, "other_cpu": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            if task.name == str(pid):
                out["main_cpu"] = cpu
                out["main_wait"] = int((task / "schedstat").read_text().split()[1]) / 1e9
            else:
                out["other_cpu"] += cpu
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return out


class Sampler:
    """Twice a second: the run's iteration and a legitimate request's latency, its memory and CPU."""

    def __init__(self, client: RunClient, pid: int) -> None:
        self.client = client
        self.pid = pid
        self.process = psutil.Process(pid)
        self.phase = "warm-up"
        self.samples: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            began = time.monotonic()
            try:
                info = self.client.snapshot(max_points=1)["info"]
            except ConnectionError_ as error:
                self.failures.append(f"{self.phase}: {error}")
                continue
            answered = time.monotonic()
            self.samples.append({"phase": self.phase, "time": answered, "iter": int(info.get("iter", 0)),
                                 "latency": answered - began, "rss": self.process.memory_info().rss,
                                 **thread_times(self.pid)})

    def phase_figures(self, phase: str) -> dict[str, float]:
        rows = [s for s in self.samples if s["phase"] == phase]
        if len(rows) < 2:
            return dict.fromkeys(("rate", "rate_less_waits", "main_us", "wait", "other_cpu", "rss_max",
                                  "latency_p50", "latency_max"), math.nan)
        first, last = rows[0], rows[-1]
        seconds, iterations = last["time"] - first["time"], last["iter"] - first["iter"]
        waited = last["main_wait"] - first["main_wait"]
        latencies = [r["latency"] for r in rows]
        return {
            "rate": iterations / seconds,
            # The rate had the training thread never waited for a CPU (other programs' doing, mostly).
            "rate_less_waits": iterations / max(1e-9, seconds - waited),
            "main_us": (last["main_cpu"] - first["main_cpu"]) / max(1, iterations) * 1e6,
            "wait": waited / seconds,
            "other_cpu": (last["other_cpu"] - first["other_cpu"]) / seconds,
            "rss_max": max(r["rss"] for r in rows),
            "latency_p50": statistics.median(latencies),
            "latency_max": max(latencies),
        }


def free_port_pair() -> int:
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of ports")


def wait_for_connection(work: Path, process: subprocess.Popen, timeout: float = 120.0) -> RunClient:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the run exited early ({process.returncode})")
        found = list(work.glob("*/cockpit.json"))
        if found:
            try:
                return RunClient.connect(found[0].parent, timeout=30)
            except ConnectionError_:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not start serving")
        time.sleep(0.05)


def flood(kind: str, connection: dict[str, Any], seconds: float, flooders: int) -> list[tuple[str, dict]]:
    target = {"busy loop": busy, "strangers": stranger, "insiders": insider}[kind]
    context = mp.get_context("spawn")
    results: mp.Queue = context.Queue()
    deadline = time.monotonic() + seconds  # CLOCK_MONOTONIC is system-wide: the children share it
    processes = [context.Process(target=target, args=(connection, deadline, results), daemon=True)
                 for _ in range(flooders)]
    for process in processes:
        process.start()
    out = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(30)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each flood")
    parser.add_argument("--quiet", type=float, default=20.0, help="length of each quiet phase")
    parser.add_argument("--flooders", type=int, default=1, help="hostile processes per flood")
    parser.add_argument("--pin", action="store_true", help="the run on one CPU, the flooders on the others")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 10 s phases")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.quiet = 10.0, 10.0
    cpus = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cpus) > 1
    run_cpus, other_cpus = ({cpus[0]}, set(cpus[1:])) if pin else (set(cpus), set(cpus))
    floods = ("busy loop", "strangers", "insiders")
    phases = [("warm-up", 10.0), ("quiet 1", args.quiet)]
    for number, flood_kind in enumerate(floods, 2):
        phases += [(flood_kind, args.seconds), (f"quiet {number}", args.quiet)]

    with tempfile.TemporaryDirectory(prefix="cockpit-soak-") as folder:
        root = Path(folder)
        config = root / "soak_cfg.py"
        config.write_text(CONFIG)
        work = root / "work"
        port = free_port_pair()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(root / "run.log", "wb") as log:
            run = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui",
                                    "--work-dir", str(work), "--listen", f"127.0.0.1:{port}"],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env,
                                   preexec_fn=lambda: os.sched_setaffinity(0, run_cpus))
        os.sched_setaffinity(0, other_cpus)  # this process and the flooders it starts
        try:
            client = wait_for_connection(work, run)
            connection = client.info  # the connection file: what an insider holds
            sampler = Sampler(client, run.pid)
            sampler.start()
            reports: dict[str, list] = {}
            for phase, seconds in phases:
                sampler.phase = phase
                print(f"{phase}: {seconds:.0f} s", flush=True)
                if phase in floods:
                    reports[phase] = flood(phase, connection, seconds, args.flooders)
                else:
                    time.sleep(seconds)
            sampler.stop()
            final = client.command("save", timeout=120)
            stopped = client.command("stop", "nosave", timeout=120)
            client.close()
            run.wait(120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait(30)
        restarts = (root / "run.log").read_text(errors="replace").count("the channel thread failed")

    figures = {phase: sampler.phase_figures(phase) for phase, _ in phases[1:]}
    print()
    print(f"CPUs: the run on {sorted(run_cpus)}, flooders and this process on {sorted(other_cpus)}")
    print(f"{'phase':<10} {'it/s':>7} {'vs quiet':>8} {'less waits':>10} {'train us/it':>11} {'waited':>7} "
          f"{'other thr':>9} {'RSS max':>9} {'lat p50':>8} {'lat max':>8}")
    ok = True
    verdicts = []
    names = list(figures)
    for index, (phase, row) in enumerate(figures.items()):
        beside = [figures[names[i]] for i in (index - 1, index + 1)] if phase in floods else []
        base = statistics.mean([b["rate"] for b in beside]) if beside else row["rate"]
        base_less = statistics.mean([b["rate_less_waits"] for b in beside]) if beside else row["rate_less_waits"]
        print(f"{phase:<10} {row['rate']:7.1f} {row['rate'] / base:7.2f}x {row['rate_less_waits'] / base_less:9.2f}x "
              f"{row['main_us']:11.0f} {row['wait']:6.0%} {row['other_cpu']:8.2f}c {row['rss_max'] / 2 ** 20:7.1f}MB "
              f"{row['latency_p50'] * 1000:6.1f}ms {row['latency_max'] * 1000:6.0f}ms")
        if phase in ("strangers", "insiders"):
            ratio = row["rate"] / base
            busy_ratio = (row["rate"] / base) / (figures["busy loop"]["rate"] / statistics.mean(
                [figures[names[names.index("busy loop") + i]]["rate"] for i in (-1, 1)]))
            growth = row["rss_max"] - figures[names[index - 1]]["rss_max"]
            verdict = ratio >= 0.8 and growth < 64 * 2 ** 20
            ok &= verdict
            verdicts.append(f"{phase}: {ratio:.2f}x the rate of the quiet phases beside it (target >= 0.8x; "
                            f"{busy_ratio:.2f}x what a busy loop leaves it); memory {growth / 2 ** 20:+.1f} MB against "
                            f"the quiet phase before (target < 64 MB): {'met' if verdict else 'NOT MET'}")
    print("(vs quiet: against the mean of the quiet phases beside it; less waits: the same with the training "
          "thread's waits for a CPU taken out of both; train us/it: the training thread's CPU per iteration; "
          "waited: the share of the time it waited for a CPU; other thr: CPU of the run's other threads "
          "(channel, ZeroMQ I/O, authenticator), in cores)")
    for phase, outcome in reports.items():
        for name, counts in outcome:
            print(f"  {phase}: {name}: {counts}")
    print("\n".join(verdicts))
    print(f"legitimate requests that failed: {len(sampler.failures)} {sampler.failures[:3]}")
    print(f"channel thread restarts in the run's log: {restarts}")
    print(f"after the floods: {final['outcome']} ({final['message']}); stop: {stopped['outcome']}; "
          f"exit {run.returncode}")
    ok &= not sampler.failures and not restarts and final["outcome"] == "applied"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
