"""The terminal cockpit attached to a run of each framework, in a real terminal (a private tmux server).

``cockpit attach <run folder>`` in a tmux pane, as a person would type it next to a training script
of theirs: the status line and the loss plot show, ``p`` pauses and continues, ``s`` saves, and
quitting with ``s`` stops the run, which exits.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import pytest
from e2e.test_tui_terminal import COCKPIT, LOOK, Tmux, cockpit_showing
from support import wait_for

from adapters.helpers import HERE, ScriptRun, mmengine_config
from cockpit.channel.auth import pid_alive

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

FRAMEWORKS = {"mmengine": ("mmengine", "cv2"), "lightning": ("lightning",), "hf": ("transformers", "accelerate")}


def start(framework: str, folder) -> tuple[ScriptRun, str]:
    """The framework's test script, at full speed; returns the run and its name's start."""
    missing = [m for m in FRAMEWORKS[framework] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    folder.mkdir()
    (folder / "gate").touch()
    if framework == "mmengine":
        config = mmengine_config(folder, by_epoch=False, gate=folder / "gate")
        return ScriptRun(folder, [str(HERE / "mm_train.py"), str(config)]), "cfg_"
    script = {"lightning": "lightning_train.py", "hf": "hf_train.py"}[framework]
    return ScriptRun(folder, [str(HERE / script), str(folder / "w"), "--gate", str(folder / "gate")]), \
        script.removesuffix(".py") + "_"


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_terminal_cockpit_on_a_run_of(framework, tmp_path):
    run, name = start(framework, tmp_path / framework)
    tmux = Tmux()
    try:
        run.connect(tmp_path / framework / "w")
        tmux.start(f"sh -c '{COCKPIT} attach {run.run_dir}; echo $? > {tmp_path}/rc'", 100, 30, tmp_path)
        wait_for(lambda: cockpit_showing(tmux.screen(), name), what="the cockpit: status line and a plot",
                 interval=LOOK, show=tmux.screen)

        tmux.keys("p")
        run.wait_status("paused")
        wait_for(lambda: "paused" in tmux.screen(), what="the status line to say paused", interval=LOOK,
                 show=tmux.screen)
        tmux.keys("s")
        tmux.keys("p")
        run.wait_status("running")
        run.wait(lambda s: s.checkpoints, "the checkpoint s asked for")  # the Trainer saves after the pause

        tmux.keys("q")
        wait_for(lambda: "Leave the cockpit?" in tmux.screen(), what="the quit screen", interval=LOOK,
                 show=tmux.screen)
        tmux.keys("x")  # the quit screen: x stops (s is save on the main screen)
        run.wait_status("stopped")
        assert run.exit_code() == 0, run.output()[-3000:]
        rc = wait_for(lambda: (tmp_path / "rc").is_file() and (tmp_path / "rc").read_text().strip(),
                      what="cockpit attach to exit", show=tmux.screen)
        assert rc == "0", tmux.screen()
    finally:
        tmux.kill()
        run.end()


def test_cockpit_run_script_shows_the_cockpit_on_a_lightning_script(tmp_path):
    """``cockpit run --script train.py ARGS``: the script trains in a session of its own, the cockpit
    shows its run, and stopping from the quit screen ends the script, which exits 0."""
    if importlib.util.find_spec("lightning") is None:
        pytest.skip("lightning not installed")
    gate = tmp_path / "gate"
    gate.touch()
    work = tmp_path / "w"
    tmux = Tmux()
    try:
        tmux.start(f"sh -c '{COCKPIT} run --script {HERE / 'lightning_train.py'} {work} --gate {gate}; "
                   f"echo $? > {tmp_path}/rc'", 100, 30, tmp_path)
        wait_for(lambda: cockpit_showing(tmux.screen(), "lightning_"), what="the cockpit on the script's run",
                 interval=LOOK, show=tmux.screen)
        run_dir = next(p for p in work.iterdir() if (p / "run.json").is_file())
        tmux.keys("q")
        wait_for(lambda: "Leave the cockpit?" in tmux.screen(), what="the quit screen", interval=LOOK,
                 show=tmux.screen)
        tmux.keys("x")
        rc = wait_for(lambda: (tmp_path / "rc").is_file() and (tmp_path / "rc").read_text().strip(),
                      what="cockpit run --script to exit", show=tmux.screen)
        assert rc == "0", tmux.screen()
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "stopped", record
        assert record["last_checkpoint"], record  # stop saves first
        assert not pid_alive(record["pid"])
    finally:
        tmux.kill()
        subprocess.run(["pkill", "-f", str(work)], check=False)  # the script's own session outlives tmux


def test_cockpit_run_script_refuses_config_options(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('never runs')\n")
    result = subprocess.run([*COCKPIT.split(), "run", "--resume", "x", "--script", str(script)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--resume" in result.stderr and "script's own arguments" in result.stderr
    assert "never runs" not in result.stdout
