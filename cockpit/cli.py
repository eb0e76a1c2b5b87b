"""The ``cockpit`` command.

Exit codes: 0 done, 1 the training failed, 2 bad usage or a bad config.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from cockpit.cfg_options import CfgOptionsAction
from cockpit.channel.auth import ConnectionError_
from cockpit.errors import CheckpointError, ConfigError

EXIT_OK, EXIT_TRAINING_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cockpit",
        description="Train PyTorch models from a Python config, and watch and steer the run.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run", help="train from a config file",
        description="Train from a config file. In a terminal the training runs in its own process (it survives "
                    "a closed terminal or a dropped SSH connection) and this one shows it; with --no-tui or no "
                    "terminal it trains here, printing progress lines.")
    run.add_argument("config", help="the Python config file")
    run.add_argument("--work-dir", help="where checkpoints and run folders go (default: work_dirs/<config name>)")
    run.add_argument("--cfg-options", nargs="+", default=[], action=CfgOptionsAction, metavar="KEY=VALUE",
                     help="override config keys, e.g. train_cfg.max_epochs=5 model.hidden=64")
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                     help="resume from CKPT, or from the newest checkpoint in the work dir when no path is given")
    run.add_argument("--no-tui", action="store_true", help="train in this process, printing plain progress lines")
    run.add_argument("--detach", action="store_true", help="start the run in the background and return at once")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="train with N processes on this machine through torchrun (DDP; gloo on CPU, nccl on GPUs)")
    run.add_argument("--listen", metavar="HOST:PORT",
                     help="also serve views over TCP (the connection file's key is still required)")
    run.add_argument("--trust-checkpoint", action="store_true",
                     help="allow checkpoints that need arbitrary pickles (only for files you trust)")
    run.add_argument("--timestamp", help=argparse.SUPPRESS)

    attach = commands.add_parser("attach", help="watch and steer a run that is already going",
                                 description="Attach to a live run (default: the newest under ./work_dirs). "
                                             "Ctrl-C detaches; the run goes on.")
    attach.add_argument("run", nargs="?", help="a run folder, its connection file, or a folder of runs")
    attach.add_argument("--plain", action="store_true", help="print progress lines instead of the cockpit")

    ls = commands.add_parser("ls", help="list live and finished runs", description="List runs under a folder.")
    ls.add_argument("root", nargs="?", default="work_dirs", help="where to look (default: ./work_dirs)")

    ctl = commands.add_parser(
        "ctl", help="send one command to a run",
        description="Send one command to a live run and wait for its outcome. Exit status: 0 applied, "
                    "1 rejected or failed, 2 the run could not be reached. `cockpit ctl RUN help` lists the "
                    "run's commands, including those its hooks offer.",
        epilog="built-in commands:\n" + commands_help(_builtin_commands()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ctl.add_argument("run", help="a run folder, its connection file, or a folder of runs (its newest live one)")
    ctl.add_argument("name", metavar="COMMAND", help="the command, or 'help'")
    ctl.add_argument("args", nargs="*", help="the command's arguments")
    ctl.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the outcome")

    hooks = commands.add_parser("hooks", help="print the hook order of a config without training",
                                description="Print, per stage, the hooks in execution order with their priorities.")
    hooks.add_argument("config", help="the Python config file")
    hooks.add_argument("--cfg-options", nargs="+", default=[], action=CfgOptionsAction, metavar="KEY=VALUE", help="override config keys")
    return parser


def commands_help(commands: list[dict]) -> str:
    """``usage  description`` lines for a run's commands (as the run describes them)."""
    lines = []
    for command in commands:
        usage = command.get("usage") or command["name"]
        lines.append(f"  {usage:<28} {command['description']}")
        for arg in command.get("args", []):
            if isinstance(arg, dict) and arg.get("help"):
                lines.append(f"  {'':<28}   {arg['name']}: {arg['help']}")
    return "\n".join(lines)


def _builtin_commands() -> list[dict]:  # noqa: N802
    from cockpit.commands import builtin_commands

    return [command.describe() for command in builtin_commands()]


def _load(args: argparse.Namespace):  # noqa: ANN202 - returns a Config
    from cockpit.config import Config

    cfg = Config.fromfile(args.config, args.cfg_options or None)
    if "LOCAL_RANK" in os.environ and cfg.get("launcher", "none") == "none":
        cfg["launcher"] = "pytorch"  # started by torchrun
    if getattr(args, "work_dir", None):
        cfg["work_dir"] = args.work_dir
    resume = getattr(args, "resume", None)
    if resume is True:
        cfg["resume"] = True
    elif isinstance(resume, str):
        cfg["resume"] = resume
        cfg["load_from"] = None
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {args.nproc}", key="--nproc")
    if args.detach or (not args.no_tui and sys.stdout.isatty()):
        return _run_in_child(args)
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        return _run_torchrun(args)
    return _run_here(args)


def _run_torchrun(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` processes through torchrun's launcher (``torch.distributed.run``) and wait."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    cfg = _load(args)  # a bad config is reported once, here, not by every process
    work_dir = Path(cfg.get("work_dir") or Path("work_dirs") / Path(args.config).stem).resolve()
    timestamp = args.timestamp or time.strftime("%Y%m%d_%H%M%S")
    worker_args = _child_command(args, work_dir, timestamp)[4:]  # after "python -m cockpit.cli run"
    worker_args = worker_args[: worker_args.index("--nproc")] if "--nproc" in worker_args else worker_args
    worker_args = [a for a in worker_args if a != "--no-tui"]
    try:
        torchrun(["--standalone", "--nproc-per-node", str(args.nproc), "--module", "cockpit.launch", *worker_args])
    except SignalException as error:
        # Ctrl-C or SIGTERM: the workers got it too, saved and stopped together.
        print(f"cockpit: stopped ({error}); continue with: cockpit run {args.config} --nproc {args.nproc} --resume",
              flush=True)
        return EXIT_OK
    except ChildFailedError as error:
        failures = ", ".join(f"rank {rank} exited with {failure.exitcode}" for rank, failure in error.failures.items())
        print(f"cockpit: a training process failed ({failures}); the others were stopped. The newest complete "
              f"checkpoint is named in {work_dir / 'last_checkpoint'}; continue with: cockpit run {args.config} "
              f"--nproc {args.nproc} --resume", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    return EXIT_OK


def _run_here(args: argparse.Namespace) -> int:
    from cockpit.runner import Runner

    cfg = _load(args)
    runner = Runner.from_cfg(cfg, trust_checkpoints=args.trust_checkpoint, serve=args.listen or True,
                             timestamp=args.timestamp)
    # In a distributed run, rank 0 speaks for all.
    say = print if runner.is_main_process else (lambda *a, **k: None)
    say(f"cockpit: run folder {runner.log_dir}", flush=True)
    try:
        runner.train()
    except (ConfigError, CheckpointError) as error:
        if not runner.started:
            raise  # a bad config or resume request: a usage error
        print(f"cockpit: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    except KeyboardInterrupt as error:
        print(f"cockpit: interrupted ({error or 'Ctrl-C'}); the newest complete checkpoint is named in "
              f"{runner.work_dir / 'last_checkpoint'}", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"cockpit: training failed; the run folder is {runner.log_dir}", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    if runner.stop_reason:
        nproc = f" --nproc {runner.world_size}" if runner.world_size > 1 else ""
        say(f"cockpit: stopped ({runner.stop_reason}) at epoch {runner.epoch}, iter {runner.iter}; "
            f"resume with: cockpit run {args.config}{nproc} --resume", flush=True)
    else:
        say(f"cockpit: finished; checkpoints in {runner.work_dir}", flush=True)
    return EXIT_OK


def _child_command(args: argparse.Namespace, work_dir: Path, timestamp: str) -> list[str]:
    command = [sys.executable, "-m", "cockpit.cli", "run", str(Path(args.config).resolve()), "--no-tui",
               "--work-dir", str(work_dir), "--timestamp", timestamp]
    if args.cfg_options:
        command += ["--cfg-options", *args.cfg_options]
    if args.resume is True:
        command.append("--resume")
    elif isinstance(args.resume, str):
        command += ["--resume", str(Path(args.resume).resolve())]
    if args.listen:
        command += ["--listen", args.listen]
    if args.trust_checkpoint:
        command.append("--trust-checkpoint")
    if args.nproc > 1:
        command += ["--nproc", str(args.nproc)]
    return command


def _run_in_child(args: argparse.Namespace) -> int:
    """Train in a process of its own session (it outlives this terminal) and show it from here."""
    from cockpit.channel.auth import CONNECTION_FILE
    from cockpit.channel.client import RunClient
    from cockpit.views import PlainView

    cfg = _load(args)  # a bad config is reported here, before anything starts
    work_dir = Path(cfg.get("work_dir") or Path("work_dirs") / Path(args.config).stem).resolve()
    timestamp = time.strftime("%Y%m%d_%H%M%S")
    while (work_dir / timestamp).exists():
        timestamp = f"{timestamp}_{os.getpid()}"
    run_dir = work_dir / timestamp
    run_dir.mkdir(parents=True)
    console = run_dir / "console.log"
    with open(console, "ab") as output:
        child = subprocess.Popen(_child_command(args, work_dir, timestamp), stdin=subprocess.DEVNULL,
                                 stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                 cwd=os.getcwd())
    connection = run_dir / CONNECTION_FILE
    while not connection.exists():
        if child.poll() is not None:
            sys.stderr.write(console.read_text()[-4000:])
            return child.returncode
        time.sleep(0.05)
    if args.detach:
        print(f"cockpit: started {run_dir.name} (pid {child.pid}) in the background\n"
              f"  run folder: {run_dir}\n  watch it:   cockpit attach {run_dir}\n"
              f"  steer it:   cockpit ctl {run_dir} save|val|pause|continue|stop\n"
              f"  its output: {console}", flush=True)
        return EXIT_OK
    with RunClient.connect(run_dir) as client:
        if sys.stdout.isatty():
            from cockpit.widgets.tui import CockpitApp

            status = CockpitApp(client).run()
        else:
            print(f"cockpit: run folder {run_dir} (training in pid {child.pid}; Ctrl-C stops it gracefully)",
                  flush=True)
            status = PlainView(client, on_interrupt="stop", alive=lambda: child.poll() is None).run()
    if status in ("detach", "detached"):
        print(f"cockpit: detached; the run goes on (pid {child.pid}). Attach again with: cockpit attach {run_dir}")
        return EXIT_OK
    code = child.wait()
    if code != 0:
        sys.stderr.write(console.read_text()[-4000:])
    return code


def cmd_attach(args: argparse.Namespace) -> int:
    from cockpit.channel.client import RunClient
    from cockpit.views import PlainView

    with RunClient.connect(args.run) as client:
        if sys.stdout.isatty() and not args.plain:
            from cockpit.widgets.tui import CockpitApp

            how = CockpitApp(client).run()
            print(f"cockpit: left the cockpit ({how or 'closed'})", flush=True)
            return EXIT_OK
        print(f"cockpit: attached to {client.info['experiment_name']} (pid {client.pid}); Ctrl-C detaches",
              flush=True)
        status = PlainView(client, on_interrupt="detach").run()
    print(f"cockpit: the run is {status}", flush=True)
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    from cockpit.channel.client import find_runs

    runs = find_runs(args.root)
    if not runs:
        print(f"no runs under {args.root}")
        return EXIT_OK
    rows = [("RUN", "STATUS", "EPOCH", "ITER", "LAST CHECKPOINT", "PID", "FOLDER")]
    for run in runs:
        epochs = f"{run.get('epoch', 0)}/{run.get('max_epochs') or '?'}"
        iters = f"{run.get('iter', 0)}/{run.get('max_iters') or '?'}"
        last = Path(run["last_checkpoint"]).name if run.get("last_checkpoint") else "-"
        status = run.get("status", "?") + (" (live)" if run.get("live") else "")
        rows.append((run.get("experiment_name", "?"), status, epochs, iters, last, str(run.get("pid", "")),
                     run["run_dir"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_ctl(args: argparse.Namespace) -> int:
    from cockpit.channel.client import RunClient

    with RunClient.connect(args.run) as client:
        if args.name == "help":
            print(commands_help(client.commands()))
            return EXIT_OK
        outcome = client.command(args.name, *args.args, timeout=args.timeout)
    if not outcome.get("done"):
        print(f"cockpit: {args.name}: no outcome within {args.timeout:.0f} s (still queued)", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    stream = sys.stdout if outcome["outcome"] == "applied" else sys.stderr
    print(f"{args.name}: {outcome['outcome']}: {outcome['message']}", file=stream)
    return EXIT_OK if outcome["outcome"] == "applied" else EXIT_TRAINING_ERROR


def cmd_hooks(args: argparse.Namespace) -> int:
    from cockpit.runner import Runner

    cfg = _load(args)
    runner = Runner.from_cfg(cfg, log_to_console=False)
    print(runner.hooks_info())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cockpit`` console script."""
    # Like ``python -m``: modules in the current folder are importable from configs.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or bad usage (argparse printed why): an exit code, not a raise
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler = {"run": cmd_run, "attach": cmd_attach, "ls": cmd_ls, "ctl": cmd_ctl, "hooks": cmd_hooks}[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"cockpit: config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CheckpointError as error:
        print(f"cockpit: checkpoint error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError_ as error:
        print(f"cockpit: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
