"""The processes that show or steer a run without torch: ``run`` in a terminal (training in a child
process), ``attach``, ``ls``, ``ctl``; and ``hooks``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from cockpit.cli.common import (
    CONSOLE_FILE,
    EXIT_OK,
    EXIT_TRAINING_ERROR,
    RUN_FILE,
    commands_help,
    printable_text,
    read_run,
)
from cockpit.cli.parser import run_args


def run_in_child(args: argparse.Namespace) -> int:
    """Train in a process of its own session (it outlives this terminal) and show it from here.

    This process never loads the config or torch: it says "starting" at once and shows what the
    child prints until the run serves. A start that fails leaves no run folder.
    """
    name = Path(args.config).stem if args.config else Path(args.resume).name
    print(f"cockpit: starting {name}…", flush=True)  # the first frame: before anything else loads
    from cockpit.views import ChildRun

    if not args.config:
        name = read_run(Path(args.resume) / RUN_FILE).name
    command = [sys.executable, "-P", "-m", "cockpit.cli", "run", *run_args(args), "--no-tui"]
    child = ChildRun(command, name, cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        return _detach(child) if args.detach else _show(child, args)
    finally:
        child.close()


def _ended_early(child: Any) -> int:
    """The child ended before it trained (or before a view saw it train): say why, and leave nothing."""
    code = child.wait()
    text = child.replay().rstrip()
    if child.never_trained():
        child.forget()
        if text:
            print(text, file=sys.stderr if code else sys.stdout, flush=True)
        return code or EXIT_OK
    print(f"cockpit: the run already ended (exit status {code}); its folder: {child.run_dir}", flush=True)
    if text:
        print("\n".join(text.splitlines()[-20:]), file=sys.stderr if code else sys.stdout, flush=True)
    return code or EXIT_OK


def _detach(child: Any) -> int:
    from cockpit.channel.auth import ConnectionError_
    from cockpit.events import is_ended

    try:
        while True:  # until the run trains (its length is known then) or the child ends
            if child.exit_code is not None:
                return _ended_early(child)
            if child.serving:
                try:
                    snapshot = child.connect().snapshot(max_points=1)
                except ConnectionError_:
                    snapshot = {}
                if "max_iters" in snapshot.get("info", {}) or is_ended(snapshot.get("status", "")):
                    break
            time.sleep(0.05)
    except KeyboardInterrupt:
        print(f"cockpit: left {child.name} starting in the background (pid {child.pid}); `cockpit ls` shows it "
              "once it trains", flush=True)
        return EXIT_OK
    run_dir = child.run_dir
    print(f"cockpit: started {run_dir.name} (pid {child.pid}) in the background\n  run folder: {run_dir}\n"
          f"  watch it:   cockpit attach {run_dir}\n"
          f"  steer it:   cockpit ctl {run_dir} save|val|pause|continue|stop\n"
          f"  its output: {run_dir / CONSOLE_FILE}", flush=True)
    return EXIT_OK


def _show(child: Any, args: argparse.Namespace) -> int:
    """The cockpit on the child's run, from its first line; then where the run stands."""
    from cockpit.views import run_summary
    from cockpit.widgets.tui import CockpitApp

    app = CockpitApp(starting=child)
    try:
        how = app.run()
    except KeyboardInterrupt:
        how = "detach"
    if child.client is None:  # it never served while the cockpit was up
        if child.exit_code is not None or how == "stop":
            return _ended_early(child)
        print(f"cockpit: left {child.name} starting in the background (pid {child.pid}); attach with "
              f"`cockpit attach` once it serves (`cockpit ls` lists it)", flush=True)
        return EXIT_OK
    if how in ("stop", "ended"):
        wait_for_end(child.pid, lambda: child.exit_code is not None, f"{child.name} to save and stop")
    code = child.exit_code  # None: it goes on (detached, or left to finish on its own)
    final_status(app.state, child.run_dir)
    resume_extra = f"--nproc {args.nproc}" if args.nproc > 1 else ""
    print(run_summary(app.state, child.run_dir, how or "closed", pid=child.pid, alive=child.exit_code is None,
                      resume_extra=resume_extra), flush=True)
    if code:
        tail = child.replay().rstrip().splitlines()[-15:]
        print("\n".join(["cockpit: the run's last output:", *tail]), file=sys.stderr, flush=True)
    return code or EXIT_OK


def wait_for_end(pid: int, ended: Any, what: str) -> bool:
    """Wait until ``ended()``; Ctrl-C leaves the run to it. Returns whether it ended."""
    if not ended():
        print(f"cockpit: waiting for {what} (Ctrl-C leaves it to finish on its own, pid {pid})…", flush=True)
    try:
        while not ended():
            time.sleep(0.1)
    except KeyboardInterrupt:
        return False
    return True


def final_status(state: Any, run_dir: Path | None) -> None:
    """Bring a view's state up to the run's last word (``run.json``), which the view may have missed."""
    if run_dir is None:
        return
    run = read_run(run_dir / RUN_FILE)
    if not run.problem and run.status and run.status != state.status and not (
            run.status == "died" and state.ended):
        state.set_status(run.status, run.detail)


# --- attach, ls, ctl, hooks ----------------------------------------------------------------------------
def cmd_attach(args: argparse.Namespace) -> int:
    from cockpit.channel.auth import pid_alive
    from cockpit.channel.client import RunClient
    from cockpit.views import PlainView, live_connection_file, run_summary

    with RunClient.connect(live_connection_file(args.run)) as client:
        run_dir = Path(client.info.get("run_dir") or "") if client.info.get("run_dir") else None
        if sys.stdout.isatty() and not args.plain:
            print(f"cockpit: attaching to {printable_text(client.info.get('experiment_name'))}…", flush=True)
            from cockpit.widgets.tui import CockpitApp

            app = CockpitApp(client)
            try:
                how = app.run()
            except KeyboardInterrupt:
                how = "detach"
            state = app.state
            if how == "stop":
                wait_for_end(client.pid, lambda: not pid_alive(client.pid), "the run to save and stop")
        else:
            print(f"cockpit: attached to {printable_text(client.info.get('experiment_name'))} (pid {client.pid}); "
                  "Ctrl-C detaches", flush=True)
            view = PlainView(client, on_interrupt="detach")
            how = view.run()
            state = view.state
    alive = pid_alive(client.pid)
    if not alive:
        final_status(state, run_dir)
    print(run_summary(state, run_dir, how or "closed", pid=client.pid, alive=alive), flush=True)
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    from cockpit.views import printable, read_runs, runs_table

    root = Path(args.root)
    if getattr(args, "interactive", False) and sys.stdout.isatty() and sys.stdin.isatty():
        if not root.is_dir():
            print(f"no runs under {printable(args.root)} (it does not exist); start one with: cockpit run CONFIG")
            return EXIT_OK
        from cockpit.widgets.tui.dashboard import DashboardApp

        DashboardApp(root).run()
        return EXIT_OK
    runs = read_runs(root) if root.is_dir() else []
    if not runs:
        print(f"no runs under {printable(args.root)}" + ("" if root.is_dir() else " (it does not exist)")
              + "; start one with: cockpit run CONFIG")
        return EXIT_OK
    print(runs_table(runs))
    return EXIT_OK


def cmd_ctl(args: argparse.Namespace) -> int:
    from cockpit.channel.client import RunClient
    from cockpit.views import live_connection_file

    with RunClient.connect(live_connection_file(args.run)) as client:
        if args.name == "help":
            print(commands_help(client.commands()))
            return EXIT_OK
        command_args = list(args.args)
        described = next((c for c in client.commands() if c.get("name") == args.name), None)
        for index, arg in enumerate(described.get("args", []) if described else []):
            # A path typed here means this folder; a bare name is the run's to find in its work dir.
            if index < len(command_args) and isinstance(arg, dict) and arg.get("kind") == "checkpoint":
                value = Path(command_args[index]).expanduser()
                if os.sep in command_args[index] and not value.is_absolute() and value.exists():
                    command_args[index] = str(value.resolve())
        outcome = client.command(args.name, *command_args, timeout=args.timeout)
    if not outcome.get("done"):
        print(f"cockpit: {args.name}: no outcome within {args.timeout:.0f} s (still queued)", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    stream = sys.stdout if outcome["outcome"] == "applied" else sys.stderr
    print(f"{args.name}: {outcome['outcome']}: {outcome['message']}", file=stream)
    return EXIT_OK if outcome["outcome"] == "applied" else EXIT_TRAINING_ERROR


def cmd_hooks(args: argparse.Namespace) -> int:
    from cockpit.config import Config
    from cockpit.runner import Runner

    runner = Runner.from_cfg(Config.fromfile(args.config, args.cfg_options or None), log_to_console=False)
    print(runner.hooks_info())
    return EXIT_OK
