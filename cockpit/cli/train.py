"""``cockpit run`` training in this process, or through torchrun (``--nproc``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from cockpit.cli.common import (
    CONSOLE_FILE,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_TRAINING_ERROR,
    EXIT_USAGE,
    UsageError,
    one_line,
)
from cockpit.cli.parser import listen_address, run_args
from cockpit.cli.resume import Plan, prepare, resume_command
from cockpit.cli.show import run_in_child
from cockpit.errors import CheckpointError, ConfigError


def _progress(args: argparse.Namespace, text: str) -> None:
    """A note for the view that started this process (it shows them while the run starts)."""
    if args.staging_output:
        from cockpit.views import PROGRESS

        print(PROGRESS + text, flush=True)


def _move_output(staging: str, run_dir: Path) -> None:
    """Send this process's output on to ``run_dir/console.log``, with what it printed so far.

    The view that started it reads the staging file until its last line names the folder.
    """
    from cockpit.views import MOVED

    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    staging_path = Path(staging)
    console = os.open(run_dir / CONSOLE_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with contextlib.suppress(OSError):
        os.write(console, staging_path.read_bytes())
    os.dup2(console, sys.stdout.fileno())
    os.dup2(console, sys.stderr.fileno())
    os.close(console)
    with contextlib.suppress(OSError):
        with open(staging_path, "a") as note:
            note.write(f"{MOVED}{run_dir}\n")
        staging_path.unlink()


def _console_handler(debug: bool) -> logging.Handler:
    """The run's log on the console: progress lines, errors in one line (their tracebacks stay in the
    log file unless ``--debug``), and without the hook-order table (the log file and ``cockpit hooks``
    have it)."""

    class OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = super().format(record)
            return text if debug else text.split("\nTraceback (most recent call last)", 1)[0]

    class Console(logging.StreamHandler):
        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
            pass  # a closed console (`| head`, a dead terminal) must not stop the run; the log file has it

    handler = Console(sys.stdout)
    handler.setFormatter(OneLine("%(asctime)s - %(message)s", "%m/%d %H:%M:%S"))
    handler.addFilter(lambda record: not str(record.msg).startswith("Hooks will be executed in the following order"))
    return handler


def _forget_failed_start(run_dir: Path, keep: set[str]) -> None:
    """Remove what a run that never trained wrote into its folder (all but ``keep``), and the folder if empty."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when empty


def _interrupted(error: BaseException | None) -> int | None:
    """``128 + N`` when a second signal N (a ``KeyboardInterrupt``, maybe wrapped) ended the run, else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, KeyboardInterrupt):
            name = re.search(r"\b(SIG[A-Z]+)\b", str(error))
            return EXIT_SIGNAL_BASE + int(getattr(signal, name.group(1), signal.SIGINT) if name else signal.SIGINT)
        error = error.__cause__ or error.__context__
    return None


def _run_here(args: argparse.Namespace) -> int:
    """Train in this process (``--no-tui``, no terminal, or a child of a view or of torchrun)."""
    _progress(args, f"loading {args.config or args.resume} and PyTorch")
    from cockpit.runner import Runner

    plan = prepare(args)
    if plan.complete:
        print(plan.complete, flush=True)
        return EXIT_OK
    for note in plan.notes:
        print(f"cockpit: {note}", file=sys.stderr, flush=True)
    planned_dir = plan.work_dir / args.timestamp if args.timestamp else None
    keep = set(os.listdir(planned_dir)) if planned_dir is not None and planned_dir.is_dir() else set()
    _progress(args, "building the model and the hooks")
    runner = Runner.from_cfg(plan.cfg, trust_checkpoints=args.trust_checkpoint, serve=args.listen or True,
                             timestamp=args.timestamp, log_to_console=False)
    main = runner.is_main_process
    run_dir = Path(runner.log_dir)
    if main:
        runner.logger.addHandler(_console_handler(args.debug))
        if args.staging_output:
            _move_output(args.staging_output, run_dir)
            keep.add(CONSOLE_FILE)
    say = print if main else (lambda *a, **k: None)
    say(f"cockpit: run folder {run_dir}", flush=True)
    if plan.lineage is not None:
        _start_fork(runner, plan.lineage, run_dir, say)
    _progress(args, "preparing the data and the loops")
    parent = os.getppid()
    try:
        runner.train()
    except BaseException as error:  # noqa: BLE001 - every way out is reported, then re-raised or coded
        if not runner.started and main:
            if args.staging_output and os.getppid() != parent:
                keep.discard(CONSOLE_FILE)  # the view that would have read it is gone
            _forget_failed_start(run_dir, keep)
        return _failed(error, runner, plan, args)
    if not main:
        return EXIT_OK
    where = f"epoch {runner.epoch}, iter {runner.iter}" if runner.is_epoch_based else f"iter {runner.iter}"
    resume = resume_command(Plan(plan.cfg, plan.work_dir, run_dir), args, nproc=runner.world_size)
    if runner.stop_reason:
        say(f"cockpit: stopped ({runner.stop_reason}) at {where}; resume with: {resume}", flush=True)
    else:
        say(f"cockpit: finished; checkpoints in {runner.work_dir}", flush=True)
    return EXIT_OK


def _start_fork(runner: Any, lineage: dict[str, Any], run_dir: Path, say: Any) -> None:
    """Record a fork's parent: in its run folder now, and in the hub once the checkpoint is restored."""
    from cockpit.cli.fork import optimizer_options
    from cockpit.rundir import write_lineage

    runner.checkpointer.lineage = lineage
    runner.checkpointer.fork_options = optimizer_options(lineage["changed"])
    if runner.is_main_process:
        write_lineage(run_dir, lineage)
    parent = lineage["parent"] or "a run not found beside it"
    say(f"cockpit: forked from {lineage['checkpoint']} (iter {lineage['forked_at']}, run {parent}); "
        f"checkpoints go to {runner.work_dir}", flush=True)


def _failed(error: BaseException, runner: Any, plan: Plan, args: argparse.Namespace) -> int:
    """Say how a training process ended on an error, and return its exit code (or raise a usage error)."""
    started, run_dir = runner.started, Path(runner.log_dir)
    pointer = runner.work_dir / "last_checkpoint"
    resume = resume_command(Plan(plan.cfg, plan.work_dir, run_dir), args, nproc=runner.world_size)
    code = _interrupted(error)
    if code is not None:
        if runner.is_main_process:
            print(f"cockpit: {str(error) or 'interrupted'} (without the final save)"
                  + (f"; the newest complete checkpoint is named in {pointer}; resume with: {resume}" if started
                     else "; nothing was trained"), file=sys.stderr, flush=True)
        return code
    if not started:
        if isinstance(error, (ConfigError, CheckpointError)):
            raise error  # a bad config or resume request: a usage error, reported by main()
        if not isinstance(error, Exception):
            raise error
        traceback.print_exception(error)
        print("cockpit: the run failed before it trained (nothing was kept)", file=sys.stderr)
        return EXIT_TRAINING_ERROR
    if not runner.is_main_process:
        return EXIT_TRAINING_ERROR
    log = run_dir / f"{run_dir.name}.log"
    if isinstance(error, (ConfigError, CheckpointError)):
        if args.debug:
            traceback.print_exception(error)
        print(f"cockpit: training failed: {one_line(error)}\n  the log: {log}\n  resume with: {resume}",
              file=sys.stderr, flush=True)
        return EXIT_TRAINING_ERROR
    if not isinstance(error, Exception):
        raise error
    traceback.print_exception(error)  # an error in the model's or a hook's code: its traceback is the message
    print(f"cockpit: training failed; the log: {log}\n  resume with: {resume}", file=sys.stderr, flush=True)
    return EXIT_TRAINING_ERROR


def _run_torchrun(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` processes through torchrun's launcher (``torch.distributed.run``) and wait."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    from cockpit.rundir import unique_timestamp

    plan = prepare(args)  # a bad config or resume is reported once, here, not by every process
    if plan.complete:
        print(plan.complete, flush=True)
        return EXIT_OK
    timestamp = args.timestamp or unique_timestamp(plan.work_dir)
    run_dir = plan.work_dir / timestamp
    if args.staging_output:
        _move_output(args.staging_output, run_dir)
    worker_args = [a for a in run_args(args) if a != "--force"]
    worker_args = worker_args[: worker_args.index("--nproc")] if "--nproc" in worker_args else worker_args
    worker_args += ["--work-dir", str(plan.work_dir), "--timestamp", timestamp, "--checked"]
    resume = resume_command(Plan(plan.cfg, plan.work_dir, run_dir), args)
    try:
        torchrun(["--standalone", "--nproc-per-node", str(args.nproc), "--module", "cockpit.launch", *worker_args])
    except SignalException as error:
        # Ctrl-C or SIGTERM: the workers got it too, saved and stopped together.
        print(f"cockpit: stopped ({error}); resume with: {resume}", flush=True)
        return EXIT_OK
    except ChildFailedError as error:
        failures = ", ".join(f"rank {rank} exited with {failure.exitcode}" for rank, failure in error.failures.items())
        codes = {failure.exitcode for failure in error.failures.values()}
        print(f"cockpit: a training process failed ({failures}); the others were stopped. The newest complete "
              f"checkpoint is named in {plan.work_dir / 'last_checkpoint'}; resume with: {resume}", file=sys.stderr)
        return EXIT_USAGE if codes == {EXIT_USAGE} else EXIT_TRAINING_ERROR
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if args.script:
        from cockpit.cli.script import run_script

        return run_script(args)
    if args.nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {args.nproc}")
    if args.listen:
        args.listen = listen_address(args.listen, args.listen_remote)
    if args.fork_from is not None:
        if args.resume is not None:
            raise UsageError("--fork-from and --resume together: a fork starts a new run from the checkpoint, a resume "
                             "continues the run that wrote it; give one (cockpit run CONFIG --fork-from CHECKPOINT)")
        if args.config is None:
            raise UsageError(f"--fork-from {args.fork_from}: give the config the fork trains with: "
                             f"cockpit run CONFIG --fork-from {args.fork_from} [--cfg-options KEY=VALUE ...]")
    if args.config is None:
        if isinstance(args.resume, str) and args.resume.endswith(".py") and Path(args.resume).is_file():
            args.config, args.resume = args.resume, True  # `cockpit run --resume cfg.py`
        elif not isinstance(args.resume, str):
            raise UsageError("give a config file (cockpit run cfg.py), or the run to continue "
                             "(cockpit run --resume RUN_FOLDER)")
    if args.detach or (not args.no_tui and sys.stdout.isatty()):
        return run_in_child(args)
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        return _run_torchrun(args)
    return _run_here(args)

