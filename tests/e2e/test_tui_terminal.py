"""The terminal cockpit in real terminals: a tmux pane, and a tmux pane running ``ssh`` to loopback.

Each test has a private tmux server (``tmux -L <unique>``), reads the screen with ``capture-pane``
and types with ``send-keys``, as a person at a terminal would. The SSH test starts its own
``sshd`` on a free loopback port with keys made in the test folder.

The training runs go at ~30 iterations/s until a ``release`` file exists in their folder, so
they last as long as a test needs and then finish in seconds once the test creates it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import child_env, free_port, wait_for, write_child_config

VENV_BIN = Path(sys.executable).parent
COCKPIT = str(VENV_BIN / "cockpit") if (VENV_BIN / "cockpit").is_file() else f"{sys.executable} -m cockpit.cli"
LOOK = 0.1  # seconds between two looks at a screen (each look starts a tmux process)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

BRAILLE = re.compile("[\u2801-\u28ff]")  # plotext draws lines in braille dots


def write_config(folder: Path) -> Path:
    """``tuirun.py`` in ``folder``: ~30 iterations/s until ``folder/release`` exists, then full speed."""
    return write_child_config(folder, name="tuirun.py", seconds=0.03, release=folder / "release", train_size=4000,
                              log_interval=50)


def run_record(work: Path) -> dict:
    files = list(work.glob("*/run.json"))
    return json.loads(files[0].read_text()) if files else {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own exited child not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def end_process(pid: int, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
    """Stop one process this test started (by its pid), harder if it does not go."""
    if not pid or not alive(pid):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + wait
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def processes_running(*args: str) -> list[int]:
    """Pids of live processes whose arguments include ``args`` in a row (e.g. ``attach <folder>``)."""
    found, n = [], len(args)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if any(argv[i : i + n] == list(args) for i in range(len(argv))) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class Tmux:
    """A private tmux server with one session, ``app``."""

    def __init__(self) -> None:
        self.socket = f"cockpit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-u", "-L", self.socket, *args], env=child_env(), capture_output=True,
                                text=True, timeout=20)
        if result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def start(self, command: str, width: int, height: int, cwd: Path) -> None:
        self("new-session", "-d", "-s", "app", "-x", str(width), "-y", str(height), "-c", str(cwd),
             # pytest leaves COLUMNS=80 LINES=24 in the C environment its children inherit, and a
             # Textual app believes those over the terminal: drop them, as a login shell would not have them.
             f"env -u COLUMNS -u LINES TERM=xterm-256color LANG=C.UTF-8 {command}")
        self("set-option", "-t", "app", "remain-on-exit", "on")  # keep the last screen to show on failure

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "app")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "app", *keys)

    def pane_pid(self) -> int:
        return int(self("list-panes", "-t", "app", "-F", "#{pane_pid}").split()[0])

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux()
    try:
        yield server
    finally:
        server.kill()


def cockpit_showing(screen: str, name: str) -> bool:
    """The status line says running and where the run is, and the loss plot has drawn points; a
    terminal of 160 columns has room for the run's name too (a narrow one leaves it out first)."""
    lines = screen.splitlines()
    status = lines[0] if lines else ""
    named = name in status or len(status) < 160
    return (named and "running" in status and "iter " in status and "━ loss" in screen
            and bool(BRAILLE.search(screen)))


# --- a terminal ----------------------------------------------------------------------------
def test_cockpit_run_in_a_terminal(tmp_path, tmux):
    config = write_config(tmp_path)
    work = tmp_path / "w"
    try:
        tmux.start(f"sh -c '{COCKPIT} run {config} --work-dir {work}; echo $? > {tmp_path}/rc'", 100, 30, tmp_path)
        wait_for(lambda: cockpit_showing(tmux.screen(), "tuirun_"), what="the cockpit: status line and a plot",
                 interval=LOOK, show=tmux.screen)
        assert "hooks, in execution order" not in tmux.screen(), "100 columns is the narrow layout"

        footer = wait_for(lambda: "p Pause" in tmux.screen().splitlines()[-1] and tmux.screen().splitlines()[-1],
                          what="the run's keys in the footer", interval=LOOK, show=tmux.screen)
        assert "g m o z plot" in footer and "? help" in footer and "q quit" in footer, footer
        tmux.keys("s")
        wait_for(lambda: list(work.glob("iter_*.pth")), what="the checkpoint that s asked for", show=tmux.screen)

        # The footer follows the state: p pauses, and then the footer offers Continue.
        tmux.keys("p")
        wait_for(lambda: "p Continue" in tmux.screen().splitlines()[-1] and "paused" in tmux.screen().splitlines()[0],
                 what="the footer to offer Continue while paused", interval=LOOK, show=tmux.screen)
        wait_for(lambda: run_record(work).get("status") == "paused", what="run.json to say paused",
                 show=lambda: json.dumps(run_record(work)))
        tmux.keys("p")
        wait_for(lambda: "p Pause" in tmux.screen().splitlines()[-1], what="Pause again once running",
                 interval=LOOK, show=tmux.screen)

        # A key that changes the run's course asks first: l, a rate, enter, then n sends nothing.
        tmux.keys("l")
        wait_for(lambda: "Set learning rate" in tmux.screen(), what="the learning-rate prompt", interval=LOOK,
                 show=tmux.screen)
        tmux.keys("0", ".", "5", "Enter")
        wait_for(lambda: "Set learning rate: 0.5?" in tmux.screen(), what="the question before setting it",
                 interval=LOOK, show=tmux.screen)
        tmux.keys("n")
        wait_for(lambda: "Set learning rate: 0.5?" not in tmux.screen(), what="n to close the question",
                 interval=LOOK, show=tmux.screen)

        tmux("resize-window", "-t", "app", "-x", "160", "-y", "45")
        wait_for(lambda: "hooks, in execution order" in tmux.screen(), what="the hooks pane at 160x45",
                 interval=LOOK, show=tmux.screen)
        assert len(tmux.screen().splitlines()) == 45

        tmux.keys("q")
        wait_for(lambda: "Leave the cockpit?" in tmux.screen(), what="the quit screen", interval=LOOK,
                 show=tmux.screen)
        assert "Stop the run · x" in tmux.screen() and "Detach · d" in tmux.screen()
        tmux.keys("s")  # the main screen's save key does not stop the run here
        tmux.keys("x")
        rc = wait_for(lambda: (tmp_path / "rc").is_file() and (tmp_path / "rc").read_text().strip(),
                      what="cockpit run to exit", show=tmux.screen)
        assert rc == "0", tmux.screen()
        record = run_record(work)
        assert record["status"] == "stopped", record
        assert "stopped (command 'stop')" in next(work.glob("*/console.log")).read_text()
    finally:
        end_process(int(run_record(work).get("pid", 0) or 0))


def first_screen(tmux: Tmux) -> str:
    """The first screen that shows anything."""
    return wait_for(lambda: tmux.screen().strip() and tmux.screen(), what="a first frame", interval=0.02,
                    show=tmux.screen)


def test_first_frame_every_way_out_and_the_summary(tmp_path):
    """80x24: "starting" in the first frame; Ctrl+Q, Esc, Ctrl-C; detach prints where the run stands.
    Then 160x45: attach, the palette's Quit asks too, and the end of the run offers to leave."""
    config = write_config(tmp_path)
    work = tmp_path / "w"
    marker = tmp_path / "planted-module-ran"
    (tmp_path / "textual.py").write_text(f"open({str(marker)!r}, 'w').close()\n")  # never imported from here
    run, attach = Tmux(), Tmux()
    pid = 0
    try:
        run.start(f"sh -c '{COCKPIT} run {config} --work-dir {work}; echo $? > {tmp_path}/rc'", 80, 24, tmp_path)
        first = first_screen(run)
        assert "starting tuirun" in first, first
        wait_for(lambda: cockpit_showing(run.screen(), "tuirun_"), what="the cockpit at 80x24", interval=LOOK,
                 show=run.screen)
        pid = run_record(work)["pid"]
        screen = run.screen()
        assert len(screen.splitlines()) == 24 and "q quit" in screen

        run.keys("C-q")
        wait_for(lambda: "Leave the cockpit?" in run.screen(), what="Ctrl+Q to ask", interval=LOOK, show=run.screen)
        run.keys("Escape")
        wait_for(lambda: "Leave the cockpit?" not in run.screen(), what="Esc to stay", interval=LOOK, show=run.screen)
        run.keys("C-c")
        wait_for(lambda: "Leave the cockpit?" in run.screen(), what="Ctrl-C to ask", interval=LOOK, show=run.screen)
        run.keys("d")
        rc = wait_for(lambda: (tmp_path / "rc").is_file() and (tmp_path / "rc").read_text().strip(),
                      what="cockpit run to exit", show=run.screen)
        assert rc == "0", run.screen()
        summary = run.screen()
        run_dir = next(work.glob("*/run.json")).parent
        assert re.search(rf"cockpit: detached from tuirun_\S+; the run goes on \(pid {pid}\)", summary), summary
        assert re.search(r"status\s+running, iter \d+/\d+", summary), summary
        assert "run folder" in summary and "attach" in summary
        assert f"cockpit attach {run_dir.relative_to(tmp_path)}" in summary.replace("\n", ""), summary
        assert alive(pid), "detaching stopped the run"

        attach.start(f"sh -c '{COCKPIT} attach {work}; echo $? > {tmp_path}/rc2'", 160, 45, tmp_path)
        wait_for(lambda: cockpit_showing(attach.screen(), "tuirun_"), what="the cockpit at 160x45",
                 interval=LOOK, show=attach.screen)
        assert "hooks, in execution order" in attach.screen()
        attach.keys("C-p")
        wait_for(lambda: "Search for commands" in attach.screen(), what="the palette", interval=LOOK,
                 show=attach.screen)
        attach.keys("q", "u", "i", "t")
        wait_for(lambda: "Leave the cockpit: detach" in attach.screen(), what="Quit in the palette", interval=LOOK,
                 show=attach.screen)
        attach.keys("Enter")
        wait_for(lambda: "Leave the cockpit?" in attach.screen(), what="the palette's Quit to ask", interval=LOOK,
                 show=attach.screen)
        attach.keys("Escape")
        wait_for(lambda: "Leave the cockpit?" not in attach.screen(), what="Esc to stay", interval=LOOK,
                 show=attach.screen)

        (tmp_path / "release").touch()  # the run goes to its end
        wait_for(lambda: "The run finished" in attach.screen(), what="the end of the run, offering to leave",
                 timeout=120, interval=LOOK, show=attach.screen)
        assert "Leave the cockpit?" in attach.screen()
        attach.keys("Escape")  # stay and look: the footer has no key that steers the run any more
        footer = wait_for(lambda: "Leave the cockpit?" not in attach.screen() and attach.screen().splitlines()[-1],
                          what="the ended dialog to close", interval=LOOK, show=attach.screen)
        assert "Validate" not in footer and "Pause" not in footer and "Save" not in footer, footer
        assert "g series" in footer and "q quit" in footer, footer
        attach.keys("q")
        rc = wait_for(lambda: (tmp_path / "rc2").is_file() and (tmp_path / "rc2").read_text().strip(),
                      what="cockpit attach to exit", show=attach.screen)
        assert rc == "0", attach.screen()
        summary = attach.screen()
        assert re.search(r"cockpit: tuirun_\S+ finished", summary), summary
        assert (f"train more  cockpit run --resume {run_dir.relative_to(tmp_path)} --cfg-options "
                "train_cfg.max_epochs=4") in summary, summary
        assert not marker.exists(), "a module in the current folder was imported"
    finally:
        run.kill()
        attach.kill()
        end_process(pid)


# --- over SSH ------------------------------------------------------------------------------
@pytest.fixture
def sshd(tmp_path) -> Iterator[dict]:
    """An sshd on a free loopback port that lets root in with a key made here."""
    if not Path("/usr/sbin/sshd").is_file():
        pytest.skip("/usr/sbin/sshd is missing (apt-get install openssh-server)")
    folder = tmp_path / "ssh"
    folder.mkdir()
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    pid_file = folder / "sshd.pid"
    (folder / "sshd_config").write_text(f"""
ListenAddress 127.0.0.1
Port {port}
HostKey {folder / 'host_key'}
PidFile {pid_file}
AuthorizedKeysFile {folder / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
""")
    log = folder / "sshd.log"
    started = subprocess.run(["/usr/sbin/sshd", "-f", str(folder / "sshd_config"), "-E", str(log)],
                             capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip(), what="sshd's pid file", timeout=20,
                 show=lambda: log.read_text() if log.exists() else "")
        yield {"port": port, "key": folder / "user_key", "known_hosts": folder / "known_hosts", "log": log}
    finally:
        if pid_file.is_file():
            end_process(int(pid_file.read_text().split()[0]))


def ssh_client_pid(tmux: Tmux) -> int:
    """The ``ssh`` process in the pane: the pane's process, or the one it started."""
    pid = tmux.pane_pid()
    for _ in range(3):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh":
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            break
        pid = int(children[0])
    raise AssertionError(f"no ssh process under the pane (pid {tmux.pane_pid()})")


def test_cockpit_attach_over_ssh_and_a_dropped_connection(tmp_path, tmux, sshd):
    config = write_config(tmp_path)
    work = tmp_path / "w"
    started = subprocess.run([*COCKPIT.split(), "run", str(config), "--detach", "--work-dir", str(work)],
                             cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    run_pid = int(re.search(r"\(pid (\d+)\)", started.stdout).group(1))
    try:
        remote = (f"cd {tmp_path} && env PATH={VENV_BIN}:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "
                  f"{COCKPIT} attach {work}")
        tmux.start(f"ssh -tt -F /dev/null -i {sshd['key']} -p {sshd['port']} "
                   f"-o UserKnownHostsFile={sshd['known_hosts']} -o StrictHostKeyChecking=accept-new "
                   f"-o BatchMode=yes root@127.0.0.1 '{remote}'", 120, 40, tmp_path)
        wait_for(lambda: cockpit_showing(tmux.screen(), "tuirun_"), what="the cockpit over ssh", interval=LOOK,
                 show=lambda: tmux.screen() + sshd["log"].read_text())

        tmux.keys("s")
        wait_for(lambda: list(work.glob("iter_*.pth")), what="the checkpoint that s asked for, sent across ssh",
                 show=tmux.screen)

        # The connection drops: the ssh client dies without a word.
        os.kill(ssh_client_pid(tmux), signal.SIGKILL)
        # The run goes on without its view (once the save s asked for is done, if it is still saving).
        wait_for(lambda: run_record(work).get("status") == "running", what="the run to go on training without its view",
                 show=lambda: json.dumps(run_record(work)))
        (tmp_path / "release").touch()  # let the run go at full speed to its end
        wait_for(lambda: run_record(work).get("status") == "finished", what="the run to finish without its view",
                 timeout=120, show=lambda: json.dumps(run_record(work)))
        assert (work / "epoch_2.pth").is_file()
        # The cockpit on the far side of the dropped connection went away too.
        wait_for(lambda: not processes_running("attach", str(work)), what="the remote `cockpit attach` to exit",
                 timeout=20, interval=LOOK, show=lambda: str(processes_running("attach", str(work))))
    finally:
        end_process(run_pid)
        for pid in processes_running("attach", str(work)):  # the remote side, if it outlived the connection
            end_process(pid, signal.SIGKILL)
