"""Views that need no UI package: plain progress lines, a run starting in a child process, and the
summary printed after leaving a view.

``PlainView`` is what ``cockpit run`` and ``cockpit attach`` show when the
terminal UI is not used: the run's log lines as they happen, read through
``RunClient`` into a ``RunState`` like any other view.

``ChildRun`` is a run that ``cockpit run`` started in a process of its own
session, followed from its very first line: what the child prints while it
imports torch and builds the run (a view shows it at once), the run folder
once the child knows it, and the connection once the run serves.

``run_summary`` says where a run stands after a view leaves it, from the same
``RunState``: its status and iterations, the last and best metric (with the
best checkpoint), its folder, and the exact command to resume or re-attach.

Nothing here imports torch or a UI package: this is the view process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cockpit.channel.auth import CONNECTION_FILE, ConnectionError_, StaleConnectionError, pid_alive
from cockpit.events import Status, is_ended

if TYPE_CHECKING:
    from cockpit.channel.client import RunClient
    from cockpit.viewstate import RunState

#: A line the child prints while it starts, for the view to show; left out when its output is replayed.
PROGRESS = "cockpit: starting: "
#: The last line a starting child writes to its first output file: its output goes on in this folder.
MOVED = "cockpit: output continues in "
#: The file in the run folder that holds a child run's output.
CONSOLE_FILE = "console.log"
#: The run's status file in its folder (``cockpit.channel.server`` keeps it current).
RUN_FILE = "run.json"
#: Statuses of a run that has not recorded an end.
LIVE_STATUSES = frozenset({"created", "connecting", "running", "paused", "validating", "saving"})


def format_log(when: float, message: str) -> str:
    return f"{time.strftime('%m/%d %H:%M:%S', time.localtime(when))} - {message}"


def printable(text: Any) -> str:
    """``text`` safe for a terminal: control characters (escape sequences) shown as ``\\x1b`` and the like."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the current folder when it lies inside it (shorter to read and to type)."""
    path = Path(path)
    with contextlib.suppress(ValueError, OSError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


class PlainView:
    """Prints a run's progress until it ends or the user leaves.

    Args:
        client: the connection to the run.
        out: where lines go.
        on_interrupt: what Ctrl-C does: ``'stop'`` asks the run to stop gracefully
            (a second Ctrl-C leaves it stopping and exits), ``'detach'`` leaves the run going.
        alive: returns False when the run's process has exited (the view then ends).
    """

    def __init__(self, client: RunClient, out: TextIO = sys.stdout, on_interrupt: str = "detach",
                 alive: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.out = out
        self.on_interrupt = on_interrupt
        self.alive = alive
        from cockpit.viewstate import RunState  # here: `cockpit ls` needs none of it (nor numpy)

        self.state = RunState()
        self._interrupts = 0
        self._stop_sent = threading.Event()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def detail(self) -> str:
        return self.state.status_detail

    def _show(self, messages: list[dict[str, Any]]) -> None:
        self.state.receive(messages)
        if self.state.needs_snapshot:
            self.state.load_snapshot(self.client.snapshot(max_points=1))
        for when, _, message in self.state.take_logs():
            self._print(format_log(when, message))

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._interrupts += 1
        if self.on_interrupt == "stop" and self._interrupts == 1:
            self._print("cockpit: asking the run to stop (it saves a checkpoint first); Ctrl-C again to leave it")
            self._stop_sent.set()
        else:
            raise KeyboardInterrupt

    def run(self) -> str:
        """Follow the run; returns its final status, or ``'detached'``."""
        self.state.load_snapshot(self.client.snapshot(max_points=1))
        for when, _, message in self.state.take_logs()[-20:]:
            self._print(format_log(when, message))
        previous = signal.signal(signal.SIGINT, self._interrupt) if threading.current_thread() is threading.main_thread() else None
        try:
            while not self.state.ended:
                if self._stop_sent.is_set():
                    # Imported only when asked: the command table is not light to import.
                    from cockpit.commands import STOP

                    self._stop_sent.clear()
                    self.client.command(STOP, wait=False)
                self._show(self.client.poll_events(timeout=0.2))
                if self.alive is not None and not self.alive():
                    self._show(self.client.poll_events(timeout=0.2))
                    break
        except KeyboardInterrupt:
            self._print(f"cockpit: detached; the run goes on. Attach again with: cockpit attach "
                        f"{self.client.info.get('run_dir', '')}")
            return "detached"
        except StaleConnectionError:
            if not is_ended(self.status):
                self.state.set_status(Status.DIED, "the run's process is gone")
        except ConnectionError_ as error:
            self._print(f"cockpit: lost the run: {error}")
            return "lost"
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.status


# --- a run started by a view ------------------------------------------------------------------------
class ChildRun:
    """A run training in a child process of its own session (it outlives this one), followed from its start.

    The child writes its output to a private staging file until it knows its run folder; then it
    copies what it wrote to ``<run folder>/console.log``, goes on writing there, and leaves a
    last line in the staging file (``MOVED`` + the folder) before removing it. This object reads
    both, so a view can show what the child does before the run serves, and why it never did.

    Args:
        command: the child's command line; ``--staging-output FILE`` is added.
        name: what the run is called while it starts (the config's name).
        cwd: the child's working folder.
        env: the child's environment.
    """

    def __init__(self, command: list[str], name: str, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.started = time.monotonic()
        self.run_dir: Path | None = None
        self.client: RunClient | None = None
        fd, staging = tempfile.mkstemp(prefix="cockpit-starting-", suffix=".log")  # 0600, a fresh name
        self._staging_path = Path(staging)
        self._staging = open(staging, "rb")  # noqa: SIM115 - kept open: the child removes the file when it moves on
        self._before_move = ""
        with os.fdopen(fd, "ab") as output:
            self.process = subprocess.Popen([*command, "--staging-output", staging], stdin=subprocess.DEVNULL,
                                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=cwd, env=env)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        """The child's exit status once it ended (``128 + N`` when a signal N ended it), else None."""
        code = self.process.poll()
        return 128 - code if code is not None and code < 0 else code

    def _read_staging(self) -> None:
        if self.run_dir is not None:
            return
        self._before_move += self._staging.read().decode(errors="replace")
        marker = self._before_move.rfind(MOVED)
        if marker >= 0 and self._before_move.endswith("\n"):
            self.run_dir = Path(self._before_move[marker + len(MOVED):].strip())
            self._before_move = self._before_move[:marker]

    def output(self, limit: int = 64 * 1024) -> str:
        """The last ``limit`` characters the child printed, wherever it printed them."""
        self._read_staging()
        if self.run_dir is None:
            return self._before_move[-limit:]
        try:
            with open(self.run_dir / CONSOLE_FILE, "rb") as console:
                console.seek(max(0, os.fstat(console.fileno()).st_size - limit))
                return console.read().decode(errors="replace")
        except OSError:
            return self._before_move[-limit:]

    def progress(self, count: int = 8) -> list[str]:
        """The child's last ``count`` lines, progress notes shown without their prefix."""
        lines = [line.removeprefix(PROGRESS) for line in self.output(8192).splitlines() if line.strip()]
        return [printable(line) for line in lines[-count:]]

    def replay(self) -> str:
        """What the child printed, less its progress notes (to show after it ended without serving)."""
        return "".join(line for line in self.output().splitlines(keepends=True) if not line.startswith(PROGRESS))

    @property
    def serving(self) -> bool:
        self._read_staging()
        return self.run_dir is not None and (self.run_dir / CONNECTION_FILE).exists() and self.exit_code is None

    def connect(self) -> RunClient:
        """A client of the run, once it serves (kept, and closed by ``close``).

        Raises:
            ConnectionError_: the run does not serve (yet, or any more).
        """
        if self.client is None:
            if self.run_dir is None:
                raise ConnectionError_("the run does not serve yet")
            from cockpit.channel.client import RunClient

            self.client = RunClient.connect(self.run_dir)
        return self.client

    def stop(self) -> None:
        """Ask the child to stop: SIGTERM (it saves first once it trains; before that it just ends)."""
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        return self.exit_code

    def never_trained(self) -> bool:
        """Ended without a trace of a run: no run folder, or one that holds nothing but the child's output."""
        self._read_staging()
        if self.exit_code is None:
            return False
        if self.run_dir is None or not self.run_dir.is_dir():
            return True
        return {entry.name for entry in self.run_dir.iterdir()} <= {CONSOLE_FILE}

    def forget(self) -> None:
        """Remove what a start that never trained left behind (its folder with only the child's output)."""
        if self.never_trained() and self.run_dir is not None and self.run_dir.is_dir():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self._staging.close()
        if self.exit_code is not None:
            self._staging_path.unlink(missing_ok=True)


# --- after a view --------------------------------------------------------------------------------------
def better_than(key: str) -> Callable[[float, float], bool]:
    """``better(a, b)``: whether value ``a`` of ``key`` beats ``b`` (lower for a loss or an error, else higher)."""
    from cockpit.viewstate import lower_is_better  # a state exists already: its module is imported

    return (lambda a, b: a < b) if lower_is_better(key) else (lambda a, b: a > b)


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def metric_lines(state: RunState) -> tuple[str, str]:
    """``(last, best)``: the newest train loss and validation metric, and the best validation result
    with the checkpoint that holds it (the run's own ``save_best`` record when it keeps one)."""
    parts = []
    loss = state.scalars.get("train/loss")
    if loss is not None and loss.values:
        parts.append(f"train/loss {_number(loss.last)}")
    metric_key = state.metric_key
    metric = state.scalars.get(metric_key) if metric_key else None
    if metric is not None and metric.values:
        parts.append(f"{metric_key} {_number(metric.last)} at iter {metric.steps[-1]}")
    last = ", ".join(parts) or "-"
    score, path = state.info.get("best_score"), state.info.get("best_ckpt")
    if path and isinstance(score, (int, float)):
        return last, f"{_number(float(score))}: {Path(str(path)).name}"
    if metric is None or not metric.values:
        return last, "- (no validation metric)"
    better = better_than(metric_key or "")
    index = 0
    for i, value in enumerate(metric.values):
        if math.isfinite(value) and (not math.isfinite(metric.values[index]) or better(value, metric.values[index])):
            index = i
    step = metric.steps[index]
    held = next((row["name"] for row in state.checkpoint_rows() if row["iter"] == step), None)
    return last, f"{metric_key} {_number(metric.values[index])} at iter {step}: " + (
        held or "no checkpoint holds it (CheckpointHook(save_best=...) keeps one)")


def progress_text(state: RunState) -> str:
    """``iter 120/450 (epoch 3/10)``; iteration-based runs show iterations only."""
    info = state.info
    loss = state.scalars.get("train/loss")
    done = loss.steps[-1] + 1 if loss is not None and loss.steps else int(info.get("iter") or 0)
    text = f"iter {done}/{info.get('max_iters') or '?'}"
    max_epochs = info.get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs > 1:
        # The hub's epoch counts the epochs done; the one under way is the next (all of them at the end).
        epoch = max_epochs if state.status == Status.FINISHED else int(info.get("epoch") or 0) + 1
        text += f" (epoch {min(epoch, max_epochs)}/{max_epochs})"
    return text


def train_further(state: RunState) -> str:
    """``--cfg-options train_cfg.max_epochs=20``: twice the length of a run that finished."""
    max_epochs = state.info.get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs > 1:
        return f"--cfg-options train_cfg.max_epochs={2 * max_epochs}"
    return f"--cfg-options train_cfg.max_iters={2 * int(state.info.get('max_iters') or 1)}"


def run_summary(state: RunState, run_dir: str | os.PathLike | None, how: str, *, pid: int | None = None,
                alive: bool = False, resume_extra: str = "") -> str:
    """Where a run stands after the user left a view of it, and the command to go on.

    Args:
        state: the view's state of the run.
        run_dir: the run's folder, if known.
        how: how the view was left: ``'detach'``, ``'stop'``, ``'ended'`` or anything else (closed).
        pid: the run's process.
        alive: whether that process is still running.
        resume_extra: options the resume command needs besides the run folder (``--nproc 2``).
    """
    name = printable(state.name or state.info.get("experiment_name") or (Path(run_dir).name if run_dir else "the run"))
    folder = shown_path(run_dir) if run_dir else None
    status = state.status if state.status != Status.CONNECTING else ("running" if alive else "unknown")
    if how in ("detach", "detached") and alive:
        head = f"cockpit: detached from {name}; the run goes on" + (f" (pid {pid})" if pid else "")
    elif alive and not is_ended(status):
        head = f"cockpit: left {name}; the run goes on" + (f" (pid {pid})" if pid else "")
    else:
        head = f"cockpit: {name} {status}"
    detail = f": {printable(state.status_detail)}" if state.status_detail and status in (
        Status.STOPPED, Status.FAILED, Status.DIED) else ""
    last, best = metric_lines(state)
    rows = [("status", f"{status}{detail}, {progress_text(state)}"), ("last", last), ("best", best)]
    if folder:
        rows.append(("run folder", folder))
        extra = f" {resume_extra}" if resume_extra else ""
        framework = state.info.get("framework")
        if alive and not is_ended(status):
            rows.append(("attach", f"cockpit attach {folder}"))
        elif isinstance(framework, str) and framework:
            # A run of another framework (an adapter's): it resumes the way that framework does.
            rows.append(("resume", f"start the script again with {printable(framework)}'s own resume option"))
        elif status == Status.FINISHED:
            rows.append(("train more", f"cockpit run --resume {folder}{extra} {train_further(state)}"))
        else:
            rows.append(("resume", f"cockpit run --resume {folder}{extra}"))
    width = max(len(label) for label, _ in rows)
    return "\n".join([head, *(f"  {label:<{width}}  {text}" for label, text in rows)])


# --- runs on disk ------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """A run folder as ``run.json`` describes it, read with suspicion (anyone may have written the file)."""

    folder: Path
    name: str = "?"
    status: str = "?"
    detail: str = ""
    epoch: int | None = None
    max_epochs: int | None = None
    iter: int | None = None
    max_iters: int | None = None
    by_epoch: bool | None = None
    last_checkpoint: str | None = None
    pid: int | None = None
    live: bool = False
    mtime: float = 0.0
    problem: str = ""


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63 else None


def _text(value: Any, limit: int = 200) -> str:
    return printable(value if isinstance(value, str) else "")[:limit]


def _process_started_after(pid: int, when: float) -> bool:
    """Whether process ``pid`` started after ``when`` (a reused pid: the run's own process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return started > when + 2.0


def read_run(path: Path) -> RunRecord:
    """One ``run.json``; never raises (a bad file gives a run with a ``problem``)."""
    run = RunRecord(path.parent, name=_text(path.parent.name))
    try:
        info = path.stat()
        run.mtime = info.st_mtime
        if info.st_size > 1 << 20:
            raise ValueError(f"{info.st_size} bytes, too big for a run record")
        record = json.loads(path.read_bytes())
    except RecursionError:
        run.problem = "run.json is nested too deeply to be a run record"
        return run
    except (OSError, ValueError) as error:
        run.problem = f"run.json cannot be read: {_text(str(error), 120)}"
        return run
    if not isinstance(record, dict):
        run.problem = f"run.json holds a {type(record).__name__}, not a run record"
        return run
    run.name = _text(record.get("experiment_name"), 80) or run.name
    run.status = _text(record.get("status"), 40) or "?"
    run.detail = _text(record.get("detail"))
    run.epoch, run.max_epochs = _whole(record.get("epoch")), _whole(record.get("max_epochs"))
    run.iter, run.max_iters = _whole(record.get("iter")), _whole(record.get("max_iters"))
    run.by_epoch = record.get("by_epoch") if isinstance(record.get("by_epoch"), bool) else None
    run.last_checkpoint = record.get("last_checkpoint") if isinstance(record.get("last_checkpoint"), str) else None
    run.pid = _whole(record.get("pid"))
    updated = record.get("updated")
    alive = run.pid is not None and run.pid > 0 and pid_alive(run.pid) and not (
        isinstance(updated, (int, float)) and _process_started_after(run.pid, float(updated)))
    run.live = alive and (run.folder / CONNECTION_FILE).exists()
    if not alive and run.status in LIVE_STATUSES:
        run.status = "died"
        run.detail = f"its process {run.pid} is gone without recording an end" if run.pid else \
            "no process recorded; it never recorded an end"
    return run


def read_runs(root: Path, depth: int = 3) -> list[RunRecord]:
    """Every run folder under ``root`` (``depth`` folders down at most), newest first; bad files included."""
    runs = []
    root = Path(root)
    base = len(root.parts)
    for folder, subfolders, files in os.walk(root, onerror=lambda error: None):
        if len(Path(folder).parts) - base >= depth:
            subfolders.clear()
        if RUN_FILE in files:
            runs.append(read_run(Path(folder) / RUN_FILE))
    return sorted(runs, key=lambda run: run.mtime, reverse=True)


def epoch_based(run: RunRecord) -> bool:
    """Whether the run counts epochs (an iteration-based run is one long epoch: its epoch means nothing)."""
    return run.by_epoch if run.by_epoch is not None else (run.max_epochs or 0) > 1


def position_text(run: RunRecord) -> str:
    text = f"iter {run.iter or 0}/{run.max_iters or '?'}"
    return text + (f" (epoch {run.epoch or 0}/{run.max_epochs})" if epoch_based(run) else "")


def not_live_message(run: RunRecord) -> str:
    """Why a run takes no commands, and what to do instead."""
    where = f"{run.name} ({run.folder})"
    if run.status == "finished":
        return (f"the run {where} finished at {position_text(run)}; it takes no more commands. Train it further with: "
                f"cockpit run --resume {run.folder} --cfg-options train_cfg."
                f"{'max_epochs' if epoch_based(run) else 'max_iters'}=N")
    detail = f" ({run.detail})" if run.detail else ""
    return (f"the run {where} {run.status}{detail} at {position_text(run)}; it takes no more commands. "
            f"Resume it with: cockpit run --resume {run.folder}")


def live_connection_file(target: str | None) -> Path:
    """The connection file of the live run ``target`` names (default: the newest under ./work_dirs).

    Raises:
        ConnectionError_: saying why there is nothing to connect to, and what to do.
    """
    root = Path(target) if target else Path("work_dirs")
    if not root.exists():
        if target is None:
            raise ConnectionError_("no runs yet: there is no ./work_dirs here. Start one with: cockpit run CONFIG "
                                   "(or name a run folder: cockpit attach RUN_FOLDER)")
        raise ConnectionError_(f"{target} does not exist (give a run folder, its cockpit.json, or a folder of runs)")
    if root.is_file():
        return root
    if (root / RUN_FILE).is_file() or (root / CONNECTION_FILE).exists():
        run = read_run(root / RUN_FILE)
        if run.problem and (root / CONNECTION_FILE).exists():
            return root / CONNECTION_FILE
        if run.live:
            return root / CONNECTION_FILE
        if run.status == "died" and run.pid:
            raise StaleConnectionError(not_live_message(run) + f" (the run's process {run.pid} is gone)")
        raise ConnectionError_(not_live_message(run))
    runs = read_runs(root)
    live = [run for run in runs if run.live]
    if live:
        return live[0].folder / CONNECTION_FILE
    hint = f" --work-dir {root}" if target else ""
    good = [run for run in runs if not run.problem]
    if not good:
        raise ConnectionError_(f"no runs yet under {root}; start one with: cockpit run CONFIG{hint}")
    newest = good[0]
    raise ConnectionError_(f"no live run under {root}: the newest, {newest.name}, {newest.status} "
                           f"({newest.folder}). `cockpit ls {root}` lists them; `cockpit run --resume "
                           f"{newest.folder}` continues it")


def runs_table(runs: list[RunRecord]) -> str:
    """``cockpit ls``: a row per run, newest first; under a failed, stopped or dead run (or an unreadable
    record) a ``why:`` line. Iteration-based runs show no epoch."""
    rows = [("RUN", "STATUS", "EPOCH", "ITER", "LAST CHECKPOINT", "PID", "FOLDER")]
    notes = {}
    for run in runs:
        if run.problem:
            rows.append((run.name, "unreadable", "-", "-", "-", "-", printable(run.folder)))
            notes[len(rows) - 1] = run.problem
            continue
        epochs = f"{run.epoch or 0}/{run.max_epochs or '?'}" if epoch_based(run) else "-"
        iters = f"{run.iter or 0}/{run.max_iters or '?'}"
        last = printable(Path(run.last_checkpoint).name) if run.last_checkpoint else "-"
        rows.append((run.name, run.status + (" (live)" if run.live else ""), epochs, iters, last,
                     str(run.pid or "-"), printable(run.folder)))
        if run.detail and run.status in ("failed", "died", "stopped"):
            notes[len(rows) - 1] = run.detail
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index in notes:
            lines.append(f"  why: {notes[index]}")
    return "\n".join(lines)
