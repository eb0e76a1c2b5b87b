"""Signals a real training process gets on a terminal or a cluster: a closed terminal (SIGHUP) and a
SIGTERM during a long validation both end in a saved checkpoint and a clean exit, soon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import child_env, wait_for, write_child_config

pytestmark = pytest.mark.timeout(240)

# A validation of 2,000 batches at 0.1 s each would take minutes: only abandoning it at the next
# batch ends the run within the test's wait. The hook marks the first validation batch.
SLOW_VALIDATION = """
import os, time
from cockpit import Hook

class SlowValidation(Hook):
    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        open(os.path.join(os.path.dirname(__file__), "in_validation"), "w").close()
        time.sleep(0.1)

val_dataloader = dict(dataset=dict(type=ToyData, size=16000, seed=1), batch_size=8)
custom_hooks.append(dict(type=SlowValidation))
"""

PROGRESS = """
import os
from cockpit import Hook

class Progress(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        open(os.path.join(os.path.dirname(__file__), "training"), "w").close()

custom_hooks.append(dict(type=Progress))
"""


def _start(config: Path, work: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui",
                             "--work-dir", str(work)], cwd=config.parent, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_record(work: Path) -> dict:
    (record,) = work.glob("*/run.json")
    return json.loads(record.read_text())


def test_sigterm_during_a_long_validation_stops_at_the_next_batch_and_saves(tmp_path):
    config = write_child_config(tmp_path, max_epochs=3, body_extra=SLOW_VALIDATION)
    work = tmp_path / "work"
    child = _start(config, work)
    try:
        wait_for(lambda: (tmp_path / "in_validation").exists() or child.poll() is not None, timeout=120,
                 what="the first validation")
        assert child.poll() is None, child.communicate()[0]
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=90)  # the whole validation would take ~200 s
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, output
    assert "val abandoned at batch" in output
    assert _run_record(work)["status"] == "stopped"
    assert (work / "last_checkpoint").read_text().strip().endswith(".pth")
    assert Path((work / "last_checkpoint").read_text().strip()).is_file()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_closed_terminal_sighup_saves_and_stops_the_run(tmp_path):
    release = tmp_path / "release"
    config = write_child_config(tmp_path, max_epochs=200, seconds=0.05, release=release, body_extra=PROGRESS)
    work = tmp_path / "work"
    child = _start(config, work)
    try:
        wait_for(lambda: (tmp_path / "training").exists() or child.poll() is not None, timeout=120,
                 what="training to start")
        assert child.poll() is None, child.communicate()[0]
        os.kill(child.pid, signal.SIGHUP)
        output, _ = child.communicate(timeout=90)
    finally:
        release.touch()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, output
    assert "received SIGHUP" in output
    record = _run_record(work)
    assert record["status"] == "stopped" and "SIGHUP" in record["detail"]
    saved = Path((work / "last_checkpoint").read_text().strip())
    assert saved.name.startswith("iter_") and saved.is_file()
