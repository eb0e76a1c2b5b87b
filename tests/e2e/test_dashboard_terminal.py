"""``cockpit ls -i`` in a real terminal (a private tmux server): two live runs and a finished one,
attaching to a live run from the dashboard and coming back to it."""

from __future__ import annotations

import pytest
from support import wait_for, write_child_config

from .helpers import cockpit, record, run_folders, stop_pid
from .test_tui_terminal import COCKPIT, LOOK, cockpit_showing, pytestmark, tmux  # noqa: F401 - the fixture

pytestmark = [*pytestmark, pytest.mark.timeout(300)]


def test_the_dashboard_lists_live_and_finished_runs_and_attaches(tmp_path, tmux):  # noqa: F811 - the fixture
    release = tmp_path / "release"
    work = tmp_path / "work"
    finished = write_child_config(tmp_path, name="done.py", max_epochs=1)
    assert cockpit("run", str(finished), "--no-tui", "--work-dir", str(work / "done"), cwd=tmp_path).returncode == 0
    pids = []
    try:
        for name in ("alpha", "beta"):
            config = write_child_config(tmp_path, name=f"{name}.py", seconds=0.03, release=release, train_size=4000,
                                        log_interval=50)
            started = cockpit("run", str(config), "--detach", "--work-dir", str(work / name), cwd=tmp_path)
            assert started.returncode == 0, started.stdout + started.stderr
            pids.append(record(run_folders(work / name)[0])["pid"])

        tmux.start(f"{COCKPIT} ls -i {work}", 160, 40, tmp_path)
        wait_for(lambda: "3 runs, 2 live" in tmux.screen() and tmux.screen().count("running ●") == 2
                 and "finished" in tmux.screen(), what="the dashboard with two live runs and a finished one",
                 interval=LOOK, show=tmux.screen)
        assert "alpha/" in tmux.screen() and "beta/" in tmux.screen() and "done/" in tmux.screen()

        tmux.keys("Enter")  # the first row: alpha, live
        wait_for(lambda: cockpit_showing(tmux.screen(), "alpha_"), what="the cockpit attached to alpha",
                 interval=LOOK, show=tmux.screen)
        tmux.keys("q")
        wait_for(lambda: "Leave the cockpit?" in tmux.screen(), what="the leave dialog", interval=LOOK,
                 show=tmux.screen)
        tmux.keys("d")
        wait_for(lambda: "3 runs, 2 live" in tmux.screen(), what="back in the dashboard after detaching",
                 interval=LOOK, show=tmux.screen)

        tmux.keys("Down", "Down", "Enter")  # done: finished, so no cockpit but the reason
        wait_for(lambda: "it takes no more commands" in tmux.screen(), what="why a finished run cannot be attached",
                 interval=LOOK, show=tmux.screen)
        tmux.keys("q")
        wait_for(lambda: "3 runs" not in tmux.screen(), what="the dashboard to close", interval=LOOK,
                 show=tmux.screen)
        assert all(record(run_folders(work / name)[0])["status"] == "running" for name in ("alpha", "beta"))
        piped = cockpit("ls", "-i", str(work), cwd=tmp_path)  # no terminal: the table, as scripts read it
        assert piped.returncode == 0 and piped.stdout.startswith("RUN ") and piped.stdout.count("(live)") == 2
    finally:
        release.touch()
        for pid in pids:
            stop_pid(pid)
