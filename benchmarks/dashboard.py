"""The runs dashboard (``cockpit ls -i``): time to the first frame with 100 runs in the folder.

A scratch folder holds 100 finished run folders (``run.json``, a ``scalars.json`` of 400 lines,
every fourth a fork with ``lineage.json``), written as runs write them
(``tests/widgets/dashboard_fixtures.py``); a second folder holds one run, the baseline.

1. In a real terminal: ``cockpit ls -i ROOT`` in a private tmux server at 160x45, from starting the
   command to the first ``capture-pane`` that shows the heading "100 runs" and the first run's row.
   Beside it, in the same rounds: ``cockpit ls -i`` on the one-run folder, and ``cockpit ls ROOT``
   (the printed table, until its last row, the oldest run, shows). Target: under 1 s with 100 runs.
2. In this process: ``DashboardApp(ROOT)`` under ``App.run_test`` at 160x45, from entering the
   app to the first ``pilot.pause()`` with every row in the table, against the one-run folder.

Rounds interleave the cases; medians are reported, and the ratios to the baselines.

Run: ``.venv/bin/python benchmarks/dashboard.py [--rounds N] [--runs N]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "widgets"))

from cockpit.widgets.tui.dashboard import DashboardApp  # noqa: E402
from dashboard_fixtures import make_run  # noqa: E402

TARGET_S = 1.0
SIZE = (160, 45)
COCKPIT = str(Path(sys.executable).parent / "cockpit")


def make_folder(root: Path, count: int) -> Path:
    """``count`` finished runs under ``root``, every fourth a fork of the one before it."""
    losses = tuple(1.0 / (1 + step) for step in range(360))
    accuracy = tuple(step / 40 for step in range(40))
    previous = None
    for index in range(count):
        lineage = None
        if index % 4 == 3 and previous is not None:
            lineage = {"parent": str(previous), "checkpoint": str(previous.parent / "epoch_1.pth"), "forked_at": 8}
        previous = make_run(root / f"exp{index:03d}" / "20260101_000000", losses=losses, accuracy=accuracy,
                            lineage=lineage)
    return root


def first_frame_in_tmux(command: str, ready: str, cwd: Path) -> float:
    """Seconds from starting ``command`` in a fresh tmux pane until the screen shows ``ready``."""
    socket = f"cockpit-bench-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-u", "-L", socket]
    try:
        started = time.perf_counter()
        subprocess.run([*tmux, "new-session", "-d", "-s", "b", "-x", str(SIZE[0]), "-y", str(SIZE[1]), "-c", str(cwd),
                        f"env -u COLUMNS -u LINES TERM=xterm-256color LANG=C.UTF-8 {command}; sleep 30"], check=True)
        while True:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
            if all(part in screen for part in ready.split("|")):
                return time.perf_counter() - started
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"no {ready!r} within 30 s:\n{screen}")
            time.sleep(0.01)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


async def first_frame_in_process(root: Path, count: int) -> float:
    """Seconds from entering ``DashboardApp(root)`` to the first paint with ``count`` rows."""
    started = time.perf_counter()
    app = DashboardApp(root, refresh_seconds=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        rows = app.query_one("DataTable").row_count
        elapsed = time.perf_counter() - started
    if rows != count:
        raise RuntimeError(f"{rows} rows in the first frame, expected {count}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cockpit-dashboard-bench-"))
    try:
        many = make_folder(scratch / "many", args.runs)
        one = make_folder(scratch / "one", 1)
        first = "exp000/20260101_000000"  # the dashboard's first row; the table's last (oldest)
        cases = {
            f"ls -i, {args.runs} runs": (f"{COCKPIT} ls -i {many}", f"{args.runs} runs|{first}"),
            "ls -i, 1 run": (f"{COCKPIT} ls -i {one}", f"1 runs|{first}"),
            f"ls (table), {args.runs} runs": (f"{COCKPIT} ls {many}", first),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        in_process: dict[str, list[float]] = {f"{args.runs} runs": [], "1 run": []}
        have_tmux = shutil.which("tmux") is not None
        for _ in range(args.rounds):
            if have_tmux:
                for name, (command, ready) in cases.items():
                    timings[name].append(first_frame_in_tmux(command, ready, scratch))
            in_process[f"{args.runs} runs"].append(asyncio.run(first_frame_in_process(many, args.runs)))
            in_process["1 run"].append(asyncio.run(first_frame_in_process(one, 1)))
        print(f"first frame of the runs dashboard, medians of {args.rounds} interleaved rounds")
        if have_tmux:
            print("in a terminal (tmux 160x45, from starting the command to the screen showing the rows):")
            for name, values in timings.items():
                print(f"  {name:<24} {statistics.median(values) * 1000:8.0f} ms")
            many_s = statistics.median(timings[f"ls -i, {args.runs} runs"])
            print(f"  ratio {args.runs} runs / 1 run: {many_s / statistics.median(timings['ls -i, 1 run']):.2f}; "
                  f"/ the printed table: {many_s / statistics.median(timings[f'ls (table), {args.runs} runs']):.2f}")
            print(f"  target < {TARGET_S:.0f} s: {'met' if many_s < TARGET_S else 'MISSED'}")
        print("in this process (App.run_test, entering the app to the first paint with every row):")
        for name, values in in_process.items():
            print(f"  {name:<24} {statistics.median(values) * 1000:8.0f} ms")
        ratio = statistics.median(in_process[f"{args.runs} runs"]) / statistics.median(in_process["1 run"])
        print(f"  ratio {args.runs} runs / 1 run: {ratio:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
