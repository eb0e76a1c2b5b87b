"""What the end-to-end tests share: the real ``cockpit`` command in a subprocess, its lines as they come,
the run folders it leaves, and ending the processes a test started (by pid, never by name)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support import child_env

from cockpit.channel.auth import pid_alive

VENV_BIN = Path(sys.executable).parent


def cockpit_argv() -> list[str]:
    """The installed console script beside this interpreter, or ``python -m cockpit.cli``."""
    script = VENV_BIN / "cockpit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cockpit.cli"]


def cockpit(*args: str, cwd: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """Run ``cockpit ARGS`` to its end (it must never hang)."""
    return subprocess.run([*cockpit_argv(), *args], cwd=cwd, env=child_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def start(*args: str, cwd: Path, **env: str) -> subprocess.Popen:
    """Start ``cockpit ARGS``; its stdout and stderr come as one text stream."""
    return subprocess.Popen([*cockpit_argv(), *args], cwd=cwd, env=child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_folders(work: Path) -> list[Path]:
    """The run folders under ``work`` (the folders beside the checkpoints)."""
    return sorted(path for path in work.iterdir() if path.is_dir()) if work.is_dir() else []


def record(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder, or {} while there is none."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def stop_pid(pid: int | None, wait: float = 30.0) -> None:
    """End a training process this test started (by its pid), gracefully if it can."""
    if not pid or not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end(process: subprocess.Popen) -> None:
    """Kill a ``cockpit`` process this test started, if it still runs, and reap it."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


class Lines:
    """The lines a child process prints, read in a thread so the test can wait for them."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        """The first line from now on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s: {self.lines[-20:]}") from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"the output ended before {pattern!r}: {self.lines[-20:]}")
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self, timeout: float = 120) -> str:
        """Everything until the output ends."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                self._queue.put(None)
                return "\n".join(self.lines)
            self.lines.append(line)


def hold_at_the_end(release: Path) -> str:
    """Config text (``write_child_config(body_extra=...)``) for a hook that holds the run at its last
    iteration until ``release`` exists: the run cannot end before the test lets it."""
    return f"""
import os as _os
import time as _time

from cockpit import Hook as _Hook


class HoldAtTheEnd(_Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 >= runner.max_iters:
            while not _os.path.exists({str(release)!r}):
                _time.sleep(0.02)


custom_hooks.append(dict(type=HoldAtTheEnd))
"""
