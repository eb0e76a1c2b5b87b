"""What the adapter tests share: a training script in a child process, followed as a view follows it.

(tests/support.py holds what the whole suite shares; this holds what only tests/adapters uses.)

A ``ScriptRun`` starts a framework's training script with the cockpit in it, connects a
``RunClient`` to the run folder it serves from, and folds the events into a ``RunState`` (the
view model every view uses), so a test waits on what a view would show.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import child_env, wait_for

from cockpit.channel import RunClient
from cockpit.channel.auth import pid_alive
from cockpit.channel.client import find_runs
from cockpit.viewstate import RunState

HERE = Path(__file__).resolve().parent


class ScriptRun:
    """One training script in a child process, and a view of the run it serves.

    Args:
        folder: a new folder for the run (its work dir and output go there).
        argv: the script and its arguments (run with this Python).
        env: more environment variables for the child.
    """

    def __init__(self, folder: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.output_file = folder / "output.txt"
        self.gate = folder / "gate"
        with self.output_file.open("w") as output:
            self.process = subprocess.Popen([sys.executable, *argv], cwd=folder, env=child_env(**(env or {})),
                                            stdout=output, stderr=subprocess.STDOUT)
        self.client: RunClient | None = None
        self.state = RunState()

    # --- reading ----------------------------------------------------------------------------------
    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def _check_alive(self) -> None:
        if not self.alive() and self.client is None:
            raise AssertionError(f"the run exited ({self.process.returncode}) before serving:\n{self.output()[-4000:]}")

    def connect(self, root: Path, timeout: float = 120) -> RunClient:
        """Connect to the run's folder under ``root`` once it serves; return the client."""

        def live() -> Path | None:
            self._check_alive()
            runs = [r for r in find_runs(root) if r["live"]]
            return Path(runs[0]["run_dir"]) if runs else None

        self.run_dir = wait_for(live, timeout, "the run to serve views", show=lambda: self.output()[-3000:])
        self.client = RunClient.connect(self.run_dir)
        self.state.load_snapshot(self.client.snapshot())
        return self.client

    def poll(self) -> RunState:
        self.state.receive(self.client.poll_events(0.05))
        return self.state

    def wait(self, condition: Callable[[RunState], Any], what: str, timeout: float = 120) -> Any:
        """Wait until ``condition(state)`` holds on the events received so far."""

        return wait_for(lambda: condition(self.poll()), timeout, what, show=lambda: f"status {self.state.status}, info iter "
                        f"{self.state.info.get('iter')}\n{self.output()[-3000:]}")

    def wait_status(self, *statuses: str, timeout: float = 120) -> str:
        return self.wait(lambda s: s.status in statuses and s.status, f"status {' or '.join(statuses)}", timeout)

    def command(self, name: str, *args: str, expect: str = "applied", timeout: float = 120) -> str:
        """Send a command (as ``cockpit ctl`` does), check its outcome, return its message."""
        answer = self.client.command(name, *args, timeout=timeout)
        assert answer["outcome"] == expect, f"{name} {args}: {answer}\n{self.output()[-3000:]}"
        return answer["message"]

    def record(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "run.json").read_text())

    def release(self) -> None:
        """Let a gated run go (its first iteration waits for the gate file)."""
        self.gate.touch()

    def hold(self) -> None:
        """Make the run stand still at its next iteration's start (until ``release``)."""
        self.gate.unlink(missing_ok=True)

    def exit_code(self, timeout: float = 120) -> int:
        return self.process.wait(timeout)

    # --- ending -------------------------------------------------------------------------------------
    def end(self) -> None:
        """Close the view and end the child if it still runs (by its pid), tidying a killed run's sockets."""
        if self.client is not None:
            self.client.close()
        pid = self.process.pid
        if pid_alive(pid) and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            for connection in self.folder.glob("**/cockpit.json"):
                address = json.loads(connection.read_text()).get("control", "")
                if address.startswith("ipc://"):
                    shutil.rmtree(Path(address[len("ipc://"):]).parent, ignore_errors=True)


def mmengine_config(folder: Path, *, by_epoch: bool, gate: Path, seconds: float = 0.0) -> Path:
    """An MMEngine config with the cockpit's two lines; the toy problem of ``adapters.mm_toys``."""
    if by_epoch:
        sampler = "dict(type='DefaultSampler', shuffle=True)"
        loop = "train_cfg = dict(by_epoch=True, max_epochs=1000, val_interval=1000)"
        checkpoint = "dict(type='CheckpointHook', interval=1, by_epoch=True)"
    else:
        sampler = "dict(type='InfiniteSampler', shuffle=True)"
        loop = "train_cfg = dict(by_epoch=False, max_iters=100000, val_interval=100000)"
        checkpoint = "dict(type='CheckpointHook', interval=100000, by_epoch=False)"
    text = f"""\
        custom_imports = dict(imports=['cockpit.adapters.mmengine', 'adapters.mm_toys'], allow_failed_imports=False)
        model = dict(type='ToyModel')
        work_dir = {str(folder / 'w')!r}
        train_dataloader = dict(dataset=dict(type='ToyData', size=64), sampler={sampler}, batch_size=8,
                                collate_fn=dict(type='default_collate'))
        val_dataloader = dict(dataset=dict(type='ToyData', size=32, seed=1),
                              sampler=dict(type='DefaultSampler', shuffle=False), batch_size=16,
                              collate_fn=dict(type='default_collate'))
        val_evaluator = dict(type='ToyAccuracy')
        val_cfg = dict()
        {loop}
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
        param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=5)]
        default_hooks = dict(checkpoint={checkpoint}, logger=dict(type='LoggerHook', interval=5))
        custom_hooks = [dict(type='GateHook', gate={str(gate)!r}, seconds={seconds}), dict(type='NoteHook'),
                        dict(type='CockpitHook')]
        randomness = dict(seed=0)
    """
    path = folder / "cfg.py"
    path.write_text(textwrap.dedent(text))
    return path


def scalar_after(state: RunState, key: str, step: int) -> float | None:
    """The first value of scalar ``key`` at a step past ``step`` (None if none yet)."""
    series = state.scalars.get(key)
    if series is None:
        return None
    return next((v for s, v in zip(series.steps, series.values, strict=True) if s > step), None)



def steer_from_the_notebook(run: ScriptRun, loss_key: str = "train/loss") -> None:
    """The notebook widget attached to ``run`` (``Cockpit.attach``): it plots the loss, shows the hooks and
    steers the run with its buttons: pause, save, continue. The run goes on afterwards."""
    from cockpit.widgets.notebook import Cockpit

    cockpit = Cockpit.attach(run.run_dir, refresh_interval=0.1)
    try:
        assert cockpit.runner is None
        wait_for(lambda: len(cockpit.state.scalars.get(loss_key, ())) > 2, what="the attached run's loss")
        wait_for(lambda: cockpit.view.plot.trace(loss_key) is not None, what="the loss trace")
        assert cockpit.state.hooks, "no hook table"
        click(cockpit, "pause")
        wait_for(lambda: cockpit.state.status == "paused", what="the widget to show the run paused")
        assert cockpit.save()["outcome"] == "applied"
        click(cockpit, "continue")
        wait_for(lambda: cockpit.state.status == "running", what="the widget to show the run running")
    finally:
        cockpit.close()


def click(cockpit: Any, name: str) -> None:
    """Click command ``name``'s button once the widget offers it, and say yes if it asks first."""
    controls = cockpit.view.controls

    def shown() -> Any:
        try:
            button = controls.button(name)
        except KeyError:  # the run's command list has not arrived yet
            return None
        return button if button.layout.display != "none" and not button.disabled else None

    wait_for(shown, what=f"the button of {name!r}").click()
    if controls.confirm.asking:
        controls.confirm.yes.click()
