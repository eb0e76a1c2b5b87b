"""Terminal cockpit benchmarks, each next to its baseline from the same run.

1. Frames with a long history: ``CockpitApp`` under ``App.run_test`` at 160x45 showing a run
   whose ``RunState`` got 1,000,000 points of ``train/loss`` (and ``train/lr``, ``train/time``,
   ``train/data_time``), against the same with 1,000 points. The long history reaches the state
   two ways: in one snapshot (a ``RunState`` loaded with 1M points), and as 1M ``ScalarUpdated``
   events per scalar (what a view that watched the whole run holds). Medians of:
   - ``ScalarPlot.draw`` of the loss plot (smoothing, downsampling, handing points to plotext);
   - the loss plot's render (plotext builds its character canvas);
   - a full screen refresh: ``app.redraw()`` after invalidating the drawn version (all panes
     draw again, as after a resize), then the paint: until every widget's refresh reached the
     screen and ``Screen._on_timer_update()`` (what ``Pilot.pause()`` ends with) has run --
     reported whole and split into the two;
   - ``app.redraw()`` + ``await pilot.pause()`` (wall clock, which includes the Pilot's idle
     detection, ~20 ms granular, and the CPU time of the same).
   Target: a full refresh under 50 ms.
2. Start-up: ``cockpit run demos/digits.py`` in a private tmux server at 160x45, from starting
   the command to the first ``capture-pane`` that shows the status line, and to the first that
   shows a plot with points. Medians of a few runs, with the steps before: the config loaded and
   the training process started (its run folder appears), and that process serving (its
   connection file appears; the view starts only then).

If a target is missed, a profile of the slow frame says where the time goes.

3. The cost of a view: the CPU of ``cockpit attach`` in tmux watching a ~20 it/s run, and the same
   view with the run paused; ``--view-baseline REV`` runs the view of git revision REV beside it on
   the same run (before/after over the same windows). Target: 10% of one core. ``--view-attach
   WORK_DIR`` watches a run started earlier instead (its series are long from the first frame).
4. ``--view-profile SECONDS``: where a view's time goes (cProfile, in this process).
5. ``--notebook-cost``: the same for a Jupyter kernel showing the notebook widget (same target).

Run: ``.venv/bin/python benchmarks/tui.py [--quick] [--points N] [--no-startup] [--no-profile]
[--no-frames] [--view-baseline HEAD] [--view-attach WORK_DIR] [--no-view-cost --view-profile 20]
[--notebook-cost]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "widgets"))

from cockpit.widgets.tui import CockpitApp  # noqa: E402
from cockpit.widgets.tui.parts.plots import ScalarPlot  # noqa: E402
from cockpit.widgets.tui.source import StaticSource  # noqa: E402
from tui_fixtures import FIXED_TIME, build_snapshot, make_checkpoint_files  # noqa: E402

TARGET_MS = 50.0
SIZE = (160, 45)
BRAILLE = re.compile("[\u2801-\u28ff]")


def ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


# --- 1. frames --------------------------------------------------------------------------------
def feed_events(state, scalars: dict) -> None:  # noqa: ANN001 - a RunState
    """Apply every point of ``scalars`` as the channel's ``ScalarUpdated`` events, in step order."""
    from cockpit.events import ScalarUpdated

    series = list(scalars.items())
    apply = state.apply
    seq = state.seq
    for index in range(len(series[0][1]["steps"])):
        for key, data in series:
            if index < len(data["steps"]):
                seq += 1
                apply(ScalarUpdated(seq, key, data["values"][index], data["steps"][index]))


async def measure_frames(points: int, reps: int, profile: bool, feed: str = "snapshot") -> dict[str, float | str]:
    """Frame times with ``points`` of history, which reached the state in a snapshot or as events."""
    snapshot = build_snapshot(iters=points)
    scalars = snapshot["scalars"]
    if feed == "events":
        snapshot = {**snapshot, "scalars": {}}
    # No timer frames while measuring: the app draws only when asked.
    app = CockpitApp(StaticSource(snapshot), frame_rate=1e-3, live=False, clock=lambda: FIXED_TIME)
    out: dict[str, float | str] = {}
    async with app.run_test(size=SIZE) as pilot:
        while not app.state.version:  # the feed thread loads the snapshot
            await pilot.pause(0.01)
        if feed == "events":
            started = time.perf_counter()
            with app.lock:
                feed_events(app.state, scalars)
            out["feed s"] = time.perf_counter() - started
        await pilot.pause()
        app.redraw()
        await pilot.pause()  # the first frame, not measured
        plot = app.query_one("#loss-plot", ScalarPlot)
        out["held points"] = len(app.state.scalars["train/loss"].steps)

        plots = list(app.query(ScalarPlot))

        def as_after_a_resize() -> None:
            """Every pane drawn again, and every plot's picture built again (a resize changes its size)."""
            app._drawn_version = -1
            for each in plots:
                each._picture = None

        draw, render = [], []
        for _ in range(reps):
            with app.lock:
                plot._picture = None  # a picture built, not the one kept
                start = time.perf_counter()
                plot.draw(app.state)
                draw.append(time.perf_counter() - start)
            start = time.perf_counter()
            plot.render()
            render.append(time.perf_counter() - start)
        out["drawn points"] = plot.drawn_points
        out["loss draw"] = ms(draw)
        out["loss render"] = ms(render)

        renders = []
        plain_render = plot.render

        def counted_render():
            renders.append(1)
            return plain_render()

        plot.render = counted_render  # to check that each measured refresh painted the plot
        redraw, paint, total = [], [], []
        for _ in range(reps):
            as_after_a_resize()
            before = len(renders)
            start = time.perf_counter()
            app.redraw()
            drawn = time.perf_counter()
            await pilot._wait_for_screen()  # refresh messages reach the screen, whose timer paints
            app.screen._on_timer_update()  # anything left: layout and paint, as Pilot.pause() ends
            done = time.perf_counter()
            assert len(renders) > before, "the refresh did not paint the loss plot"
            redraw.append(drawn - start)
            paint.append(done - drawn)
            total.append(done - start)
        out["redraw"] = ms(redraw)
        out["paint"] = ms(paint)
        out["refresh"] = ms(total)

        wall, cpu = [], []
        for _ in range(reps):
            as_after_a_resize()
            start, start_cpu = time.perf_counter(), time.process_time()
            app.redraw()
            await pilot.pause()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out["redraw+pause wall"] = ms(wall)
        out["redraw+pause cpu"] = ms(cpu)

        if profile:
            profiler = cProfile.Profile()
            as_after_a_resize()
            profiler.enable()
            app.redraw()
            await pilot._wait_for_screen()
            app.screen._on_timer_update()
            profiler.disable()
            plot.render = plain_render
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
            out["profile"] = text.getvalue()
    return out


def report_frames(args: argparse.Namespace) -> bool:
    make_checkpoint_files()
    cases = {"base": (1_000, "snapshot"), "snapshot": (args.points, "snapshot"), "events": (args.points, "events")}
    results = {}
    for name, (points, feed) in cases.items():
        started = time.perf_counter()
        results[name] = asyncio.run(measure_frames(points, args.reps, profile=False, feed=feed))
        print(f"  measured {points:,} points ({feed}) in {time.perf_counter() - started:.1f} s", flush=True)
    base = results["base"]
    print(f"\n1. frames at {SIZE[0]}x{SIZE[1]}, medians of {args.reps} (ms); baseline 1,000 points. The long history")
    print("   reached the state once in a snapshot (the brief's 'RunState with 1M points'), once as 1M events")
    print("   per scalar (what a view that watched the whole run holds).")
    print(f"   {'':22}{'1,000 pts':>12}{'1M snapshot':>16}{'ratio':>8}{'1M events':>14}{'ratio':>8}"
          if args.points == 1_000_000 else
          f"   {'':22}{'1,000 pts':>12}{f'{args.points:,} snapshot':>16}{'ratio':>8}{f'{args.points:,} events':>14}"
          f"{'ratio':>8}")
    for key in ("loss draw", "loss render", "redraw", "paint", "refresh", "redraw+pause wall", "redraw+pause cpu"):
        snap, events = results["snapshot"][key], results["events"][key]
        print(f"   {key:22}{base[key]:12.1f}{snap:16.1f}{snap / base[key]:7.1f}x{events:14.1f}{events / base[key]:7.1f}x")
    print(f"   train/loss points the state holds: {base['held points']:,} / {results['snapshot']['held points']:,} / "
          f"{results['events']['held points']:,}; the loss plot hands plotext {base['drawn points']} / "
          f"{results['snapshot']['drawn points']} / {results['events']['drawn points']}; feeding the events took "
          f"{results['events']['feed s']:.1f} s")
    ok = True
    for name in ("snapshot", "events"):
        refresh = results[name]["refresh"]
        met = refresh < TARGET_MS
        ok = ok and met
        print(f"   full refresh, {args.points:,} points by {name}: {refresh:.1f} ms (target < {TARGET_MS:.0f} ms): "
              f"{'met' if met else 'MISSED'}")
        if not met and args.profile:
            print(f"\n   where the time of one slow refresh goes ({name}; cProfile, cumulative, ~2-3x slower):")
            profiled = asyncio.run(measure_frames(args.points, 1, profile=True, feed=name))
            for line in str(profiled["profile"]).splitlines():
                print("   " + line[:160])
    return ok


# --- 2. start-up --------------------------------------------------------------------------
def tmux(socket_name: str, *args: str) -> str:
    return subprocess.run(["tmux", "-u", "-L", socket_name, *args], capture_output=True, text=True,
                          timeout=20).stdout


def first_frame(folder: Path) -> dict[str, float]:
    """Seconds from starting ``cockpit run demos/digits.py`` to what the screen shows."""
    socket_name = f"cockpit-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work = folder / "work"
    cockpit = Path(sys.executable).parent / "cockpit"
    command = f"{cockpit} run {REPO / 'demos' / 'digits.py'} --work-dir {work}"
    times: dict[str, float] = {}
    start = time.perf_counter()
    tmux(socket_name, "new-session", "-d", "-s", "app", "-x", str(SIZE[0]), "-y", str(SIZE[1]), "-c", str(folder),
         f"env -u COLUMNS -u LINES TERM=xterm-256color LANG=C.UTF-8 {command}")
    try:
        deadline = start + 120
        while time.perf_counter() < deadline and "plot" not in times:
            screen = tmux(socket_name, "capture-pane", "-p", "-t", "app")
            now = time.perf_counter() - start
            if "spawn" not in times and work.is_dir() and any(work.iterdir()):
                times["spawn"] = now  # the run folder: made just before the training process starts
            if "connection" not in times and list(work.glob("*/cockpit.json")):
                times["connection"] = now
            if "status" not in times and "digits_" in screen and ("running" in screen or "━ loss" in screen):
                times["status"] = now
            if "status" in times and "━ loss" in screen and BRAILLE.search(screen):
                times["plot"] = now
            time.sleep(0.02)
        # Leave: q then s stops the run (it saves), and the command exits.
        tmux(socket_name, "send-keys", "-t", "app", "q")
        time.sleep(0.5)
        tmux(socket_name, "send-keys", "-t", "app", "s")
        end = time.perf_counter() + 60
        while time.perf_counter() < end and tmux(socket_name, "list-sessions"):
            time.sleep(0.2)
    finally:
        tmux(socket_name, "kill-server")
        for run_file in work.glob("*/run.json"):  # the training process, if it outlived the view
            pid = int(re.search(r'"pid":\s*(\d+)', run_file.read_text()).group(1))
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
    return times


def report_startup(args: argparse.Namespace) -> None:
    if shutil.which("tmux") is None:
        print("\n2. start-up: skipped (no tmux)")
        return
    runs = []
    for _ in range(args.startup_runs):
        with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as folder:
            runs.append(first_frame(Path(folder)))
    print(f"\n2. start-up of `cockpit run demos/digits.py` in tmux at {SIZE[0]}x{SIZE[1]}, median of {len(runs)} (s)")
    for key, label in (("spawn", "config loaded, training process started"),
                       ("connection", "training process serving (cockpit.json)"),
                       ("status", "first frame: the status line"),
                       ("plot", "first frame with loss points")):
        values = [r[key] for r in runs if key in r]
        shown = f"{statistics.median(values):6.2f}" if values else "   n/a"
        print(f"   {label:42}{shown}   runs: {', '.join(f'{v:.2f}' for v in values)}")


# --- 3. the cost of a view -----------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def view_pid(socket_name: str, session: str = "app") -> int:
    """The ``cockpit attach`` process in the pane (the pane runs it directly)."""
    return int(tmux(socket_name, "list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])


def baseline_tree(revision: str, folder: Path) -> Path:
    """The package at git ``revision`` laid out for ``PYTHONPATH`` (``cockpit/`` with ``cockpit/widgets/``,
    as the editable install maps them); returns the folder to put on the path."""
    source, tree = folder / "source", folder / "path"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "cockpit", "widgets"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    shutil.copytree(source / "cockpit", tree / "cockpit")
    shutil.copytree(source / "widgets", tree / "cockpit" / "widgets")
    return tree


def report_view_cost(args: argparse.Namespace) -> None:
    """CPU of a terminal view (``cockpit attach`` in tmux at 160x45, 4 frames a second) watching a run
    at ~20 it/s, against the same view while the run is paused (no events: the frame timer alone).

    Interleaved windows of ``--view-window`` seconds, each kind ``--view-rounds`` times; medians. With
    ``--view-baseline REV``, a second view runs the code of git revision ``REV`` beside this one,
    attached to the same run and measured over the same windows (before/after from one run).
    """
    if shutil.which("tmux") is None:
        print("\n3. view cost: skipped (no tmux)")
        return
    folder = Path(tempfile.mkdtemp(prefix="cockpit-bench-view-"))
    views = {"this tree": ""}
    if args.view_baseline:
        views = {f"baseline {args.view_baseline}": f"PYTHONPATH={baseline_tree(args.view_baseline, folder / 'base')} ",
                 **views}
    work, run = watched_run(args, folder)
    socket_name = f"cockpit-bench-view-{os.getpid()}"
    client = None
    try:
        client = connect(work)
        ready_by = time.monotonic() + 120
        cockpit = Path(sys.executable).parent / "cockpit"
        pids = {}
        for index, (name, env) in enumerate(views.items()):
            session = f"view{index}"
            tmux(socket_name, "new-session", "-d", "-s", session, "-x", str(SIZE[0]), "-y", str(SIZE[1]), "-c",
                 str(folder), f"env -u COLUMNS -u LINES TERM=xterm-256color LANG=C.UTF-8 {env}{cockpit} attach {work}")
            while "iter " not in tmux(socket_name, "capture-pane", "-p", "-t", session) and time.monotonic() < ready_by:
                time.sleep(0.2)
            pids[name] = view_pid(socket_name, session)
        time.sleep(3 + args.view_warmup)  # past the first frames and the snapshot (and the warm-up asked for)
        shares: dict[tuple[str, str], list[float]] = {(name, kind): [] for name in views for kind in ("running", "paused")}
        speeds: list[float] = []
        first_iter = int(client.snapshot(max_points=1)["info"].get("iter", 0))
        for _ in range(args.view_rounds):
            for kind in ("running", "paused"):
                client.command("pause" if kind == "paused" else "continue", wait=True, timeout=30)
                time.sleep(1.0)  # the view catches up with the change
                start_iter = int(client.snapshot(max_points=1)["info"].get("iter", 0))
                wall, cpu = time.monotonic(), {name: cpu_seconds(pid) for name, pid in pids.items()}
                time.sleep(args.view_window)
                elapsed = time.monotonic() - wall
                for name, pid in pids.items():
                    shares[name, kind].append(100 * (cpu_seconds(pid) - cpu[name]) / elapsed)
                if kind == "running":
                    speeds.append((int(client.snapshot(max_points=1)["info"].get("iter", 0)) - start_iter) / elapsed)
        print(f"\n3. a terminal view's CPU (cockpit attach in tmux at {SIZE[0]}x{SIZE[1]}, 4 frames/s), "
              f"{args.view_rounds} interleaved windows of {args.view_window:.0f} s each, medians; the run at "
              f"{statistics.median(speeds):.1f} it/s, from iter {first_iter}"
              + (f"; {len(views)} views side by side" if len(views) > 1 else ""))
        for name in views:
            running = statistics.median(shares[name, "running"])
            paused = statistics.median(shares[name, "paused"])
            print(f"   {name}: watching {running:5.1f}% of one core (target <= 10%: {'met' if running <= 10 else 'MISSED'})"
                  f"   windows: " + ", ".join(f"{v:.1f}" for v in shares[name, "running"]))
            print(f"   {'':{len(name)}}  run paused (frame timer only) {paused:5.1f}%   windows: "
                  + ", ".join(f"{v:.1f}" for v in shares[name, "paused"]))
        if len(views) > 1:
            (before, after) = views
            ratios = [b / a for b, a in zip(shares[after, "running"], shares[before, "running"], strict=True) if a]
            print("   watching, this tree / baseline per window: " + ", ".join(f"{r:.2f}" for r in ratios)
                  + f"; median {statistics.median(ratios):.2f}")
        print(f"   load average {os.getloadavg()[0]:.1f}")
    finally:
        tmux(socket_name, "kill-server")
        end_run(run, client, folder)


def watched_run(args: argparse.Namespace, folder: Path) -> tuple[Path, subprocess.Popen | None]:
    """The run a view watches: ``--view-attach``'s (started earlier, so its series are long at once:
    a view attached to it gets the hub's history in its first snapshot), or a new one in ``folder``."""
    if args.view_attach:
        return Path(args.view_attach), None
    work = folder / "w"
    return work, start_run(folder, work)


def start_run(folder: Path, work: Path) -> subprocess.Popen:
    """A ~20 it/s run for a view to watch: SlowHook sleeps 45 ms an iteration; it logs every 10."""
    sys.path.insert(0, str(REPO / "tests"))
    from support import child_env, write_child_config

    config = write_child_config(folder, seconds=0.045, train_size=8 * 100_000, max_epochs=1, val_interval=None,
                                log_interval=10)
    return subprocess.Popen([sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui", "--work-dir",
                             str(work)], cwd=folder, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)


def connect(work: Path) -> Any:
    """A client of the run under ``work``, once it serves (at most 2 minutes)."""
    from cockpit.channel.client import RunClient

    deadline = time.monotonic() + 120
    while not list(work.glob("*/cockpit.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return RunClient.connect(work)


def end_run(run: subprocess.Popen | None, client: Any, folder: Path) -> None:
    """Close the view's client, stop the training run (one this benchmark started) and remove its folder."""
    if client is not None:
        if run is None:
            client.command("continue", wait=True, timeout=30)  # a run it attached to goes on as it found it
        client.close()
    if run is not None:
        run.terminate()
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
    shutil.rmtree(folder, ignore_errors=True)


def report_view_profile(args: argparse.Namespace) -> None:
    """Where a view's CPU goes: ``CockpitApp`` in this process (headless, 160x45, 4 frames a second)
    attached to a ~20 it/s run for ``--view-profile`` seconds, under cProfile (the app's thread: its
    frames; the feed thread's decoding is left out), with the process's CPU share over the same time."""
    folder = Path(tempfile.mkdtemp(prefix="cockpit-bench-profile-"))
    work, run = watched_run(args, folder)

    async def watch(client: Any) -> tuple[float, str]:
        app = CockpitApp(client)
        async with app.run_test(size=SIZE) as pilot:
            while not app.state.scalars.get("train/loss"):
                await pilot.pause(0.1)
            await asyncio.sleep(3)  # past the snapshot and the first frames
            profiler = cProfile.Profile()
            wall, cpu = time.monotonic(), time.process_time()
            profiler.enable()
            await asyncio.sleep(args.view_profile)
            profiler.disable()
            share = 100 * (time.process_time() - cpu) / (time.monotonic() - wall)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(45)
        return share, text.getvalue()

    client = None
    try:
        client = connect(work)
        share, profile = asyncio.run(watch(client))
        print(f"\n4. a view in this process (headless, {SIZE[0]}x{SIZE[1]}) watching a ~20 it/s run for "
              f"{args.view_profile:.0f} s: {share:.1f}% of one core (with cProfile's own cost); where the app's "
              "thread spends it:")
        for line in profile.splitlines():
            print("   " + line[:170])
    finally:
        end_run(run, client, folder)


def start_kernel(folder: Path, name: str, python_path: str) -> tuple[Any, Any]:
    """A Jupyter kernel of this interpreter (``python_path`` first on its path, if given) and its client."""
    import json

    from jupyter_client.manager import KernelManager

    spec = folder / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "language": "python",
                                                  "display_name": "cockpit bench"}))
    os.environ["JUPYTER_PATH"] = str(folder / "jupyter")
    kernel = KernelManager(kernel_name="python3", transport="ipc", connection_file=str(folder / f"{name}.json"))
    env = {**os.environ, **({"PYTHONPATH": python_path} if python_path else {})}
    kernel.start_kernel(env=env)
    client = kernel.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return kernel, client


def report_notebook_cost(args: argparse.Namespace) -> None:
    """CPU of a Jupyter kernel showing the notebook widget (``Cockpit.attach``, displayed) of a ~20 it/s
    run, against the same kernel while the run is paused; with ``--view-baseline REV``, a second kernel
    runs the widget of git revision ``REV`` beside it (same run, same windows). No browser is attached:
    the kernel still builds and sends every update (what a browser would draw), which is its whole cost.
    """
    folder = Path(tempfile.mkdtemp(prefix="cockpit-bench-nb-"))
    kernels: dict[str, tuple[Any, Any]] = {}
    paths = {"this tree": ""}
    if args.view_baseline:
        paths = {f"baseline {args.view_baseline}": str(baseline_tree(args.view_baseline, folder / "base")), **paths}
    work, run = watched_run(args, folder)
    client = None
    try:
        client = connect(work)
        for index, (name, python_path) in enumerate(paths.items()):
            kernels[name] = start_kernel(folder, f"k{index}", python_path)
            reply = kernels[name][1].execute_interactive(
                "from IPython.display import display\nfrom cockpit.widgets.notebook import Cockpit\n"
                f"cockpit = Cockpit.attach({str(work)!r})\ndisplay(cockpit)\n", timeout=120,
                output_hook=lambda message: None)  # the widget's display data: no one to show it to
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"the {name} kernel could not show the widget: {reply['content']}")
        pids = {name: kernel.provisioner.process.pid for name, (kernel, _) in kernels.items()}
        time.sleep(5 + args.view_warmup)
        shares: dict[tuple[str, str], list[float]] = {(name, kind): [] for name in kernels for kind in ("running", "paused")}
        for _ in range(args.view_rounds):
            for kind in ("running", "paused"):
                client.command("pause" if kind == "paused" else "continue", wait=True, timeout=30)
                time.sleep(1.0)
                wall, cpu = time.monotonic(), {name: cpu_seconds(pid) for name, pid in pids.items()}
                time.sleep(args.view_window)
                elapsed = time.monotonic() - wall
                for name, pid in pids.items():
                    shares[name, kind].append(100 * (cpu_seconds(pid) - cpu[name]) / elapsed)
        print(f"\n5. a Jupyter kernel showing the notebook widget of a ~20 it/s run, {args.view_rounds} interleaved "
              f"windows of {args.view_window:.0f} s each, medians"
              + (f"; {len(kernels)} kernels side by side" if len(kernels) > 1 else ""))
        for name in kernels:
            running = statistics.median(shares[name, "running"])
            print(f"   {name}: watching {running:5.1f}% of one core (target <= 10%: {'met' if running <= 10 else 'MISSED'})"
                  "   windows: " + ", ".join(f"{v:.1f}" for v in shares[name, "running"]))
            print(f"   {'':{len(name)}}  run paused {statistics.median(shares[name, 'paused']):5.1f}%   windows: "
                  + ", ".join(f"{v:.1f}" for v in shares[name, "paused"]))
        if len(kernels) > 1:
            before, after = kernels
            ratios = [b / a for b, a in zip(shares[after, "running"], shares[before, "running"], strict=True) if a]
            print("   watching, this tree / baseline per window: " + ", ".join(f"{r:.2f}" for r in ratios)
                  + f"; median {statistics.median(ratios):.2f}")
        print(f"   load average {os.getloadavg()[0]:.1f}")
    finally:
        for kernel, kernel_client in kernels.values():
            kernel_client.stop_channels()
            kernel.shutdown_kernel(now=True)
        end_run(run, client, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, one start-up run")
    parser.add_argument("--points", type=int, default=1_000_000, help="history length of the long run")
    parser.add_argument("--no-startup", dest="startup", action="store_false", help="skip the start-up benchmark")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="no profile of a missed target")
    parser.add_argument("--no-frames", dest="frames", action="store_false", help="skip the frame benchmark")
    parser.add_argument("--no-view-cost", dest="view_cost", action="store_false",
                        help="skip the CPU of a view watching a 20 it/s run")
    parser.add_argument("--view-window", type=float, default=10.0, help="seconds per CPU window")
    parser.add_argument("--view-rounds", type=int, default=3, help="windows of each kind")
    parser.add_argument("--view-warmup", metavar="SECONDS", type=float, default=0.0,
                        help="let the views watch this long first (a view's series stop growing at 8192 points, "
                             "about 7 minutes of a 20 it/s run)")
    parser.add_argument("--view-baseline", metavar="REV", default=None,
                        help="also run a view of git revision REV beside this tree's (same run, same windows)")
    parser.add_argument("--view-attach", metavar="WORK_DIR", default=None,
                        help="watch the run already training under WORK_DIR (e.g. one started long before, so the "
                             "views' series are long from the start) instead of starting one")
    parser.add_argument("--view-profile", metavar="SECONDS", type=float, default=0.0,
                        help="profile a view in this process watching a 20 it/s run for SECONDS (cProfile)")
    parser.add_argument("--notebook-cost", action="store_true",
                        help="also measure a Jupyter kernel showing the notebook widget of a 20 it/s run "
                             "(--view-baseline, --view-window, --view-rounds, --view-attach apply)")
    args = parser.parse_args()
    args.reps = 3 if args.quick else 7
    args.startup_runs = 1 if args.quick else 3
    load = os.getloadavg()[0]
    print(f"cockpit TUI benchmark: {os.cpu_count()} cores, load average {load:.1f} "
          "(a busy machine slows every number alike; compare with the baseline beside it)")
    if args.frames:
        report_frames(args)
    if args.startup:
        report_startup(args)
    if args.view_cost:
        report_view_cost(args)
    if args.view_profile:
        report_view_profile(args)
    if args.notebook_cost:
        report_notebook_cost(args)


if __name__ == "__main__":
    main()
