"""The command line as a person uses it: ``run --detach``, ``ls``, ``attach``, ``ctl``, and a run
that outlives the terminal it was started from (a private tmux server).

The runs these tests share train slowly (0.1 s an iteration) and wait at their last iteration
until the test that watches them end creates ``release``: however slow the machine, a run is
alive for as long as the tests need it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import child_env, wait_for, write_child_config

from cockpit.channel import RunClient
from cockpit.channel.auth import pid_alive
from cockpit.checkpoint import load_checkpoint

from .helpers import Lines, hold_at_the_end, stop_pid

MAX_EPOCHS = 250
EPOCH = 8


def write_config(folder: Path) -> tuple[Path, Path]:
    """A config in ``folder`` whose run is slow (about 0.1 s an iteration) and waits at its last iteration
    until the returned file exists; then it goes at full speed to its end."""
    release = folder / "release"
    config = write_child_config(folder, max_epochs=MAX_EPOCHS, seconds=0.1, release=release, dropout=0.2,
                                momentum=0.9, val_interval=None, checkpoint_interval=10 ** 6, seed=3,
                                custom_hooks=[dict(type="support.NoteHook")], body_extra=hold_at_the_end(release))
    return config, release


def cockpit(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the ``cockpit`` command to its end (it must never hang)."""
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


class Detached:
    """``cockpit run cfg --detach`` in a folder of its own; the training process it leaves behind."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config, self.release = write_config(folder)
        self.work = folder / "w"
        self.launcher = subprocess.Popen(
            [sys.executable, "-m", "cockpit.cli", "run", str(self.config), "--detach", "--work-dir", str(self.work)],
            cwd=folder, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._launched: tuple[int, str, str] | None = None

    @property
    def launched(self) -> tuple[int, str, str]:
        """The launcher's exit status and output, once it returned."""
        if self._launched is None:
            out, err = self.launcher.communicate(timeout=120)
            self._launched = (self.launcher.returncode, out, err)
        return self._launched

    @property
    def run_dir(self) -> Path:
        return Path(re.search(r"run folder: (\S+)", self.launched[1]).group(1))

    @property
    def pid(self) -> int:
        return int(json.loads((self.run_dir / "run.json").read_text())["pid"])

    def record(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "run.json").read_text())

    def end(self) -> None:
        if self.launcher.poll() is None:
            self.launcher.kill()
            self.launcher.communicate()
        run_file = next(self.work.glob("*/run.json"), None)
        if run_file is None:
            return
        pid = json.loads(run_file.read_text())["pid"]
        stop_pid(pid)
        connection = run_file.parent / "cockpit.json"
        if connection.exists():  # a killed run leaves its socket folder behind
            address = json.loads(connection.read_text())["control"]
            if address.startswith("ipc://"):
                shutil.rmtree(Path(address[len("ipc://"):]).parent, ignore_errors=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("steering")
    started: dict[str, Detached] = {}
    try:
        started["main"] = Detached(root / "main")
        started["stale"] = Detached(root / "stale")
        yield started
    finally:
        for run in started.values():
            run.end()


@pytest.fixture(scope="module")
def run(runs) -> Detached:
    """The main run, once its launcher returned (it serves by then)."""
    runs["main"].launched  # noqa: B018 - waits for the launcher
    return runs["main"]


def ls_row(output: str, run: Detached) -> str:
    rows = [line for line in output.splitlines() if line.rstrip().endswith(str(run.run_dir))]
    assert len(rows) == 1, output
    return rows[0]


# --- run --detach, ls, attach, ctl ----------------------------------------------------------------
def test_run_detach_prints_the_run_folder_and_returns_while_the_run_goes_on(run):
    code, out, err = run.launched
    assert code == 0, err
    assert run.run_dir.parent == run.work and run.run_dir.is_dir()
    assert f"cockpit attach {run.run_dir}" in out and f"cockpit ctl {run.run_dir}" in out
    assert f"(pid {run.pid})" in out
    assert pid_alive(run.pid), "the run did not outlive its launcher"
    assert (run.run_dir / "cockpit.json").exists()
    first = wait_for(lambda: run.record()["iter"], 60, "the first iterations")
    wait_for(lambda: run.record()["iter"] > first, 30, "training to go on after the launcher returned")


def test_ls_shows_the_live_run(run):
    wait_for(lambda: run.record().get("max_iters"), 60, "run.json to know the run's length")
    result = cockpit("ls", str(run.work), cwd=run.folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:7] == ["RUN", "STATUS", "EPOCH", "ITER", "LAST", "CHECKPOINT", "PID"]
    row = ls_row(result.stdout, run)
    name = json.loads((run.run_dir / "cockpit.json").read_text())["experiment_name"]
    pattern = (rf"{re.escape(name)}\s+running \(live\)\s+(\d+)/{MAX_EPOCHS}\s+(\d+)/{MAX_EPOCHS * EPOCH}"
               rf"\s+-\s+{run.pid}\s+{re.escape(str(run.run_dir))}$")
    match = re.match(pattern, row)
    assert match, row
    assert int(match.group(2)) > 0


def test_attach_prints_progress_lines_and_detaches_on_ctrl_c(run):
    attach = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "attach", str(run.work)], cwd=run.folder,
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = Lines(attach)
        out.wait_for(rf"^cockpit: attached to \S+ \(pid {run.pid}\); Ctrl-C detaches$")
        # Lines that happen from now on must reach it: a note, then training progress after it.
        marker = f"seen-{uuid.uuid4().hex[:8]}"
        with RunClient.connect(run.run_dir) as client:
            assert client.command("note", marker)["outcome"] == "applied"
        out.wait_for(rf"command 'note {marker}' applied: noted {marker}")
        first = out.wait_for(r"Epoch\(train\) +\[\d+\]\[\s*\d+/8\]").string
        second = out.wait_for(r"Epoch\(train\) +\[\d+\]\[\s*\d+/8\]").string
        assert first != second and "loss: " in second and "lr: 1.0000e-01" in second
        attach.send_signal(signal.SIGINT)
        out.wait_for(r"detached; the run goes on")
        assert attach.wait(30) == 0
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait(10)
    assert pid_alive(run.pid), "detaching stopped the run"


def test_ctl_save_exits_0_and_saves(run):
    result = cockpit("ctl", str(run.work), "save", cwd=run.folder)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"save: applied: saved (\S+)\n", result.stdout)
    assert match, result.stdout
    path = Path(match.group(1))
    assert path.parent == run.work and load_checkpoint(path)["meta"]["iter"] > 0


def test_ctl_with_an_unknown_command_exits_1(run):
    result = cockpit("ctl", str(run.work), "bogus", cwd=run.folder)
    assert result.returncode == 1
    assert result.stderr.startswith("bogus: rejected: unknown command 'bogus'; this run understands: ")
    assert pid_alive(run.pid)


def test_ctl_help_lists_the_runs_commands_with_those_of_its_hooks(run):
    result = cockpit("ctl", str(run.run_dir), "help", cwd=run.folder)
    assert result.returncode == 0, result.stderr
    # One line per command (usage, description), then an indented line per argument with a hint.
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if re.match(r"  \S", line)}
    assert re.fullmatch(r"\s+note <text>\s+put a note in the run info", listed["note"])
    assert re.fullmatch(r"\s+resume <checkpoint>( \[\w+\])*\s+load a checkpoint .*", listed["resume"])
    assert "checkpoint: a checkpoint name or path, 'latest' or 'best'" in result.stdout
    # The health guard's commands too (its hook is on by default).
    assert {"val", "save", "resume", "pause", "continue", "stop", "set", "note",
            "guard-continue", "guard-rollback", "guard-stop"} == set(listed)


def test_ls_shows_the_run_finished_once_it_ends(run):
    pid = run.pid
    run.release.touch()
    wait_for(lambda: not pid_alive(pid), 120, "the run to end")
    record = run.record()
    assert (record["status"], record["iter"]) == ("finished", MAX_EPOCHS * EPOCH)
    result = cockpit("ls", str(run.work), cwd=run.folder)
    assert result.returncode == 0, result.stderr
    row = ls_row(result.stdout, run)
    assert re.search(rf"\sfinished\s+{MAX_EPOCHS}/{MAX_EPOCHS}\s+{MAX_EPOCHS * EPOCH}/{MAX_EPOCHS * EPOCH}\s+"
                     rf"epoch_{MAX_EPOCHS}\.pth\s+{pid}\s", row), row
    assert "(live)" not in row
    assert "cockpit: finished" in (run.run_dir / "console.log").read_text()


def test_ctl_on_a_killed_run_says_it_is_stale_and_never_hangs(runs):
    stale = runs["stale"]
    assert stale.launched[0] == 0, stale.launched[2]
    pid = stale.pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 30, "the run to die")
    assert (stale.run_dir / "cockpit.json").exists()
    calls = {
        "run folder": [sys.executable, "-m", "cockpit.cli", "ctl", str(stale.run_dir), "save"],
        "work dir": [sys.executable, "-m", "cockpit.cli", "ctl", str(stale.work), "save"],
        "ls": [sys.executable, "-m", "cockpit.cli", "ls", str(stale.work)],
    }
    started = {name: subprocess.Popen(command, cwd=stale.folder, env=child_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name, command in calls.items()}
    results = {}
    try:
        for name, process in started.items():
            out, err = process.communicate(timeout=60)  # a hang fails here
            results[name] = (process.returncode, out, err)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    code, _, err = results["run folder"]
    assert code == 2 and ("stale" in err or "gone" in err), err
    assert f"process {pid} is gone" in err
    code, _, err = results["work dir"]
    assert code == 2 and "no live run" in err, err
    code, out, _ = results["ls"]
    assert code == 0 and re.search(rf"\sdied\s.*\s{pid}\s", ls_row(out, stale))


# --- the terminal goes away; the run does not ---------------------------------------------------
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_run_survives_its_terminal_closing(tmp_path):
    config, release = write_config(tmp_path)
    work = tmp_path / "w"
    server = f"cockpit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    command = (f"env TERM=xterm-256color OMP_NUM_THREADS=1 {shlex.quote(sys.executable)} -m cockpit.cli run "
               f"{shlex.quote(str(config))} --work-dir {shlex.quote(str(work))}")

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", server, *args], env=child_env(), capture_output=True, text=True,
                              timeout=30)

    pid = None
    try:
        started = tmux("new-session", "-d", "-s", "app", "-x", "120", "-y", "30", "-c", str(tmp_path), command)
        assert started.returncode == 0, started.stderr
        connection = wait_for(lambda: next(work.glob("*/cockpit.json"), None), 120, "the run to serve")
        served = json.loads(connection.read_text())
        pid, run_dir = served["pid"], connection.parent
        # The terminal shows the run (a view in the pane; the training in a process of its own).
        wait_for(lambda: served["experiment_name"] in tmux("capture-pane", "-p", "-J", "-t", "app").stdout, 60,
                 "the view in the terminal")
        assert tmux("list-panes", "-t", "app", "-F", "#{pane_pid}").stdout.strip() != str(pid)
        assert tmux("kill-server").returncode == 0
        wait_for(lambda: tmux("has-session", "-t", "app").returncode != 0, 10, "the terminal to close")

        record = json.loads((run_dir / "run.json").read_text())
        assert pid_alive(pid) and record["status"] == "running", "the run died with its terminal"
        wait_for(lambda: json.loads((run_dir / "run.json").read_text())["iter"] > record["iter"] + 2, 30,
                 "training to go on after the terminal closed")
        release.touch()
        wait_for(lambda: not pid_alive(pid), 120, "the run to finish")
        record = json.loads((run_dir / "run.json").read_text())
        assert (record["status"], record["iter"]) == ("finished", MAX_EPOCHS * EPOCH)
        assert "cockpit: finished" in (run_dir / "console.log").read_text()
        assert load_checkpoint(work / f"epoch_{MAX_EPOCHS}.pth")["meta"]["iter"] == MAX_EPOCHS * EPOCH
        assert not connection.exists()
    finally:
        tmux("kill-server")
        stop_pid(pid)
