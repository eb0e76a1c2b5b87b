"""The notebook cockpit as plain Python objects: real runs, real buttons, no browser."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cockpit.widgets.notebook import Cockpit
from cockpit.widgets.notebook.cockpit import RunPausedError
from cockpit.widgets.notebook.controls import ControlBar
from cockpit.widgets.notebook.grid import ScalarGrid
from cockpit.widgets.notebook.overview import overview_html
from cockpit.widgets.notebook.plots import ScalarPlot
from cockpit.widgets.notebook.system import system_html
from cockpit.widgets.notebook.view import CockpitView
from support import tiny_cfg, wait_for
from toys import ToyNet

from cockpit.channel.auth import pid_alive
from cockpit.events import ScalarUpdated, Status, StatusChanged
from cockpit.viewstate import RunState

from .tui_fixtures import COMMANDS, build_snapshot

ROOT = Path(__file__).resolve().parents[2]
QUIET_HOOKS = dict(logger=dict(type="LoggerHook", interval=20, backends=("json",)),
                   checkpoint=dict(type="CheckpointHook", interval=10_000))


def outcome_of(cockpit: Cockpit, name: str) -> str:
    """Wait until the widget shows a finished outcome for ``name``; return the outcome text."""
    outcome = cockpit.view.controls.outcome
    wait_for(lambda: re.search(rf"<b>{name}\b.*(applied|rejected|failed)", outcome.value),
             what=f"the outcome of {name!r} (shown: {outcome.value!r})")
    return outcome.value


def shown_button(controls: ControlBar, name: str):
    """The button of command ``name`` if the bar shows it and it is on, else None."""
    try:
        button = controls.button(name)
    except KeyError:  # the run's command list has not arrived yet
        return None
    return button if button.layout.display != "none" and not button.disabled else None


def click(cockpit: Cockpit, name: str) -> None:
    """Click command ``name``'s button once the widget offers it, and say yes if it asks first."""
    controls = cockpit.view.controls
    wait_for(lambda: shown_button(controls, name), what=f"the button of {name!r}").click()
    if controls.confirm.asking:
        controls.confirm.yes.click()


def trace(cockpit: Cockpit, name: str):
    found = cockpit.view.plot.trace(name)
    assert found is not None, f"no trace {name!r} in {[t.name for t in cockpit.view.figure.data]}"
    return found


@pytest.fixture
def long_run(tmp_path):
    """``long_run(**overrides)`` builds a cockpit on a tiny run long enough to steer, stopped at teardown."""
    made: list[Cockpit] = []

    def factory(work: str = "work", **overrides) -> Cockpit:
        overrides.setdefault("train_cfg", dict(by_epoch=True, max_epochs=1000, val_interval=500))
        overrides.setdefault("default_hooks", QUIET_HOOKS)
        cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / work, **overrides), refresh_interval=0.1)
        made.append(cockpit)
        return cockpit

    yield factory
    for cockpit in made:
        if cockpit.runner is not None and cockpit.runner.started:
            cockpit.runner.request_stop("test teardown", save=False)
        try:
            cockpit.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a test that expects a failure has checked it already
            pass
        cockpit.close()


def started(cockpit: Cockpit, iterations: int = 3) -> Cockpit:
    wait_for(lambda: cockpit.view.connected and cockpit.runner.iter >= iterations, what="training to start")
    return cockpit


def test_a_finished_run_shows_plots_hooks_checkpoints_and_log(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work"), refresh_interval=0.1)
    assert cockpit.state.status == "created"
    assert cockpit.train() is cockpit
    assert cockpit.wait(timeout=60) == "finished"
    view = cockpit.view

    loss = trace(cockpit, "train/loss")
    assert len(loss.x) == 16 and len(loss.y) == 16
    assert len(trace(cockpit, "train/loss (smoothed)").y) == 16
    assert trace(cockpit, "train/lr").yaxis == "y2"
    accuracy = trace(cockpit, "val/accuracy/top1")
    assert list(accuracy.x) == [8, 16] and accuracy.mode == "lines+markers" and accuracy.yaxis == "y3"
    hooks = view.hooks.table.value
    for name in ("RuntimeInfoHook", "IterTimerHook", "CheckpointHook", "LoggerHook", "before_train_iter"):
        assert name in hooks
    calls = [int(count) for count in re.findall(r"<td class='num'>(\d+)</td>", hooks)]
    assert max(calls) == 16  # the per-iteration stages were counted as they ran
    assert "µs" in hooks or "ms" in hooks
    assert [Path(row.path).name for row in view.checkpoints.rows] == ["epoch_2.pth", "epoch_1.pth"]
    assert "Epoch(train)" in view.run_log.text
    assert "iter 16 / 16" in view.progress_text.value and "epoch 2 / 2" in view.progress_text.value
    assert view.progress_bar.value == view.progress_bar.max == 16
    assert "finished" in view.header.value
    assert all(button.disabled for button in view.controls.buttons)
    assert all(button.disabled for row in view.checkpoints.rows for button in row.buttons.values())
    # The objects stay reachable, and the widget's copy matches the hub.
    assert cockpit.model is cockpit.runner.model and cockpit.hub is cockpit.runner.message_hub
    assert len(cockpit.state.scalars["train/loss"]) == cockpit.hub.get_scalar("train/loss").count
    cockpit.close()


def test_the_overview_shows_settings_folder_lineage_and_last_and_best_values(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work"), refresh_interval=0.1).train()
    cockpit.wait(timeout=60)
    text = cockpit.view.overview.body.value
    shown = re.sub(r"<[^>]+>", "|", text)  # the cells, without their markup
    for fact in ("model||ToyNet", "optimizer||SGD", "batch size||8", "length||2 epochs", str(cockpit.runner.log_dir)):
        assert fact in shown, fact
    loss = cockpit.state.scalars["train/loss"]
    accuracy = cockpit.state.scalars["val/accuracy/top1"]
    assert f"train/loss||{loss.last:.4g}||{min(loss.values):.4g}|" in shown
    assert f"val/accuracy/top1||{accuracy.last:.4g}||{max(accuracy.values):.4g}|" in shown
    timing = cockpit.state.scalars["train/time"]
    assert f"train/time||{timing.last:.4g}||{min(timing.values):.4g}|" in shown  # a faster iteration is better
    assert f"train/lr||{cockpit.state.scalars['train/lr'].last:.4g}||–|" in shown  # no "best" learning rate
    assert "branched from" not in text
    # The system panel: this run has no monitor, but its timings give the share spent waiting for data.
    assert "waiting for data" in cockpit.view.system.body.value
    # Another helper publishes where a run branched from; the overview names it.
    cockpit.state.info["lineage"] = {"parent": "work/20261130_101010", "checkpoint": "work/iter_40.pth"}
    cockpit.view.overview.show(cockpit.state)
    shown = re.sub(r"<[^>]+>", "|", cockpit.view.overview.body.value)
    assert "branched from|||work/20261130_101010| at iter_40.pth" in shown
    cockpit.close()


def test_the_overview_of_an_attached_run_shows_the_settings_the_run_publishes(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work"), refresh_interval=0.1).train()
    cockpit.wait(timeout=60)
    published = cockpit.state.info["config"]  # RuntimeInfoHook's, sent over the channel like any info
    assert published["model"] == "ToyNet" and published["batch_size"] == 8
    html_text = overview_html(cockpit.state, [])  # what Cockpit.attach shows: no config file in this kernel
    shown = re.sub(r"<[^>]+>", "|", html_text)
    for fact in ("model||ToyNet", "optimizer||SGD", "batch size||8", "length||2 epochs"):
        assert fact in shown, fact
    cockpit.close()


def test_the_system_panel_shows_process_machine_and_gpus_with_sparklines():
    state = RunState()
    state.info["system"] = {
        "time": 0.0, "interval": 1.0, "samples": 3,
        "process": {"pid": 1, "cpu": 187.5, "rss": 3 * 1024 ** 3, "threads": 9},
        "machine": {"cpu": 64.0, "cores": 2, "memory": 41.0, "memory_used": 2 * 1024 ** 3, "memory_total": 8 * 1024 ** 3},
        "gpus": [{"index": 0, "name": "A100", "util": 55.0, "memory_used": 1024 ** 3, "memory_total": 40 * 1024 ** 3}],
        "gpu_note": "",
        "history": {"process_cpu": [150.0, 170.0, 187.5], "process_rss": [1.0, 2.0, 3.0], "machine_cpu": [50, 60, 64],
                    "machine_memory": [40, 41, 41], "gpu0_util": [10, 40, 55], "gpu0_memory": [1, 1, 1]},
    }
    for step, (data, total) in enumerate([(0.01, 0.1), (0.05, 0.1)]):
        state.apply(ScalarUpdated(seq=0, key="train/data_time", step=step, value=data))
        state.apply(ScalarUpdated(seq=0, key="train/time", step=step, value=total))
    view = CockpitView(lambda *args: None)
    view.refresh(state)
    text = view.system.body.value
    for shown in ("188% of a core", "3.0 GB", "machine CPU (2 cores)", "64%", "41% of 8.0 GB", "GPU 0 A100", "55%",
                  "1.0 GB of 40.0 GB", "waiting for data", "50% of each iteration"):
        assert shown in text, shown
    assert text.count("<polyline") == 7  # a sparkline per figure
    state.info["system"] = {**state.info["system"], "gpus": [], "gpu_note": "nvidia-ml-py is not installed"}
    assert "nvidia-ml-py is not installed" in system_html(state)
    assert "no system figures" in system_html(RunState())


def test_abandoned_branches_are_drawn_dimmed():
    state = RunState()
    for step in range(60):
        state.apply(ScalarUpdated(seq=0, key="train/loss", step=step, value=1.0 / (step + 1)))
    state.apply(ScalarUpdated(seq=0, key="val/accuracy/top1", step=30, value=0.8))
    state.info["branches"] = [{"at": 30, "checkpoint": "iter_30.pth", "scalars": {
        "train/loss": {"steps": [31, 32, 33], "values": [0.5, 0.6, 0.7]},
        "val/accuracy/top1": {"steps": [33], "values": [0.7]},
        "train/data_time": {"steps": [31], "values": [0.01]}}}]
    plot = ScalarPlot()
    plot.show(state)
    loss = plot.trace("train/loss (branch at 30)")
    assert list(loss.x) == [31, 32, 33] and list(loss.y) == [0.5, 0.6, 0.7]
    assert loss.opacity < 1 and loss.line.dash == "dot" and loss.showlegend is False
    assert plot.trace("val/accuracy/top1 (branch at 30)").yaxis == "y3"
    assert plot.trace("train/data_time (branch at 30)") is None  # only what the plot shows


def test_every_scalar_gets_a_small_plot_and_the_filter_picks_them(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work"), refresh_interval=0.1).train()
    cockpit.wait(timeout=60)
    grid = cockpit.view.grid
    assert len(grid.figure.data) == 0  # closed: nothing drawn
    grid.selected_index = 0
    keys = sorted(key for key, series in cockpit.state.scalars.items() if len(series))
    assert [trace.name for trace in grid.figure.data] == keys and len(keys) > 5
    loss = next(trace for trace in grid.figure.data if trace.name == "train/loss")
    assert list(loss.x) == list(cockpit.state.scalars["train/loss"].steps)
    grid.filter.value = "val/"
    assert [trace.name for trace in grid.figure.data] == [key for key in keys if "val/" in key]
    assert f"{len(grid.figure.data)} of {len(cockpit.state.scalars)} scalars" in grid.count.value
    grid.filter.value = "nothing like this"
    assert len(grid.figure.data) == 0 and "0 of" in grid.count.value
    cockpit.close()


def test_a_new_browser_tab_gets_the_current_figure_from_the_kernel(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work"), refresh_interval=0.1).train()
    cockpit.wait(timeout=60)
    # A tab opened later draws from the widget's synced state, not from messages it missed.
    state = cockpit.view.figure.get_state()
    by_name = {trace["name"]: trace for trace in state["_widget_data"]}
    assert len(by_name["train/loss"]["x"]) == 16
    assert by_name["train/lr"]["yaxis"] == "y2"
    assert state["_widget_layout"]["yaxis3"]["visible"] is True
    assert "finished" in cockpit.view.header.get_state()["value"]
    assert "Epoch(train)" in "".join(o["text"] for o in cockpit.view.run_log.output.get_state()["outputs"])
    cockpit.close()


def test_pause_stops_the_iterations_and_continue_goes_on(long_run):
    cockpit = started(long_run().train())
    controls, runner = cockpit.view.controls, cockpit.runner

    click(cockpit, "pause")
    assert "applied" in outcome_of(cockpit, "pause")
    wait_for(lambda: shown_button(controls, "continue"), what="the Continue button")
    assert controls.button("pause").layout.display == "none"
    assert "paused" in cockpit.view.header.value
    paused_at = runner.iter
    time.sleep(0.5)
    assert runner.iter == paused_at
    assert not controls.button("save").disabled  # commands still work while paused

    click(cockpit, "continue")
    assert "continue" in outcome_of(cockpit, "continue")
    wait_for(lambda: runner.iter > paused_at + 5, what="iterations after continue")
    wait_for(lambda: shown_button(controls, "pause"), what="the Pause button back")
    assert controls.button("continue").layout.display == "none"


def test_save_writes_a_checkpoint_and_its_row_resumes_the_run(long_run):
    cockpit = started(long_run().train())
    runner = cockpit.runner
    assert cockpit.pause()["outcome"] == "applied"
    saved_at = runner.iter

    click(cockpit, "save")
    assert f"iter_{saved_at}.pth" in outcome_of(cockpit, "save")
    assert (runner.work_dir / f"iter_{saved_at}.pth").is_file()
    checkpoints = cockpit.view.checkpoints
    wait_for(lambda: checkpoints.rows, what="a checkpoint row")
    row = checkpoints.rows[0]
    assert row.iter == saved_at and not row.buttons["resume"].disabled

    cockpit.continue_training()
    wait_for(lambda: runner.iter > saved_at + 10, what="training past the checkpoint")
    cockpit.pause()
    row.buttons["resume"].click()
    assert checkpoints.confirm.asking and Path(row.path).name in checkpoints.confirm.question.value  # it asks first
    checkpoints.confirm.yes.click()
    assert "applied" in outcome_of(cockpit, "resume")
    assert runner.iter == saved_at
    wait_for(lambda: [m for m in cockpit.state.markers if m["kind"] == "resume"], what="the resume marker")
    wait_for(lambda: cockpit.view.figure.layout.shapes, what="the resume line on the plot")


def test_resume_asks_keeps_the_abandoned_branch_listed_and_shows_its_warnings(long_run):
    cockpit = started(long_run().train())
    runner, checkpoints = cockpit.runner, cockpit.view.checkpoints
    first = Path(cockpit.save()["message"].removeprefix("saved "))
    wait_for(lambda: runner.iter > int(first.stem.split("_")[1]) + 5, what="training past the first checkpoint")
    cockpit.pause()
    second = Path(cockpit.save()["message"].removeprefix("saved "))
    wait_for(lambda: len(checkpoints.rows) == 2, what="two checkpoint rows")
    here = runner.iter

    row = next(row for row in checkpoints.rows if row.path == str(first))
    row.buttons["resume"].click()
    question = checkpoints.confirm.question.value
    assert f"The run goes back from iter {here} to iter {row.iter}" in question  # it asks, and says what it does
    checkpoints.confirm.yes.click()
    assert "resume" in outcome_of(cockpit, "resume") and runner.iter == row.iter
    # The run's history went back to the first checkpoint; the second is still good and still listed.
    wait_for(lambda: [r for r in checkpoints.rows if r.path == str(second) and r.abandoned],
             what="the abandoned branch's checkpoint, listed")
    assert "1 from an abandoned branch" in checkpoints.title.value

    # A checkpoint without optimizer state resumes, and the outcome says what was lost.
    bare = runner.save_checkpoint(runner.work_dir, "weights_only.pth", save_optimizer=False)
    entry = cockpit.resume(str(bare))
    assert entry["outcome"] == "applied"
    assert entry["warnings"] == [f"{bare} has no optimizer state; the optimizer starts fresh"]
    shown = cockpit.view.controls.outcome.value
    assert "⚠ applied with a warning" in shown and "has no optimizer state" in shown and "✓" not in shown


def test_validate_and_the_learning_rate_field(long_run):
    cockpit = started(long_run().train())
    controls, runner = cockpit.view.controls, cockpit.runner

    click(cockpit, "val")
    assert "accuracy/top1=" in outcome_of(cockpit, "val")
    wait_for(lambda: cockpit.view.plot.trace("val/accuracy/top1") is not None, what="the validation trace")
    assert trace(cockpit, "val/accuracy/top1").yaxis == "y3"

    # The field's text goes to the run as typed; the run reads it.
    controls.field("set").value = "0.025"
    click(cockpit, "set")
    assert "0.1 -&gt; 0.025" in outcome_of(cockpit, "set")
    assert runner.optim_wrapper.param_groups[0]["lr"] == 0.025
    controls.field("set").value = "×2"
    click(cockpit, "set")
    wait_for(lambda: runner.optim_wrapper.param_groups[0]["lr"] == 0.05, what="lr*=2")

    controls.field("set").value = "fast"
    click(cockpit, "set")
    assert "not a number" in outcome_of(cockpit, "set")


def test_stop_ends_the_run_and_turns_the_buttons_off(long_run):
    cockpit = started(long_run().train())
    click(cockpit, "stop")
    assert cockpit.wait(timeout=30) == "stopped"
    assert all(button.disabled for button in cockpit.view.controls.buttons)
    assert cockpit.view.controls.field("set").disabled
    assert list(cockpit.runner.work_dir.glob("iter_*.pth"))  # stop saves first
    refused = cockpit.save()
    assert refused["outcome"] == "rejected" and "ended" in refused["message"]
    assert "ended" in cockpit.view.controls.outcome.value


def test_wait_on_a_paused_run_raises_instead_of_blocking_for_ever(long_run):
    cockpit = started(long_run().train())
    assert cockpit.pause()["outcome"] == "applied"
    with pytest.raises(RunPausedError, match=r"the run is paused at iter \d+.*continue it first"):
        cockpit.wait()
    cockpit.continue_training()
    cockpit.stop()
    assert cockpit.wait(timeout=30) == "stopped"


def test_an_interrupted_wait_saves_and_stops_the_run(long_run, capsys):
    cockpit = started(long_run().train())
    runner = cockpit.runner
    waiting = threading.Event()

    def interrupt_once_waiting() -> None:
        waiting.wait()
        at = runner.iter
        wait_for(lambda: runner.iter > at + 2, what="training while wait() blocks")
        os.kill(os.getpid(), signal.SIGINT)  # what a kernel interrupt does: SIGINT to the kernel

    threading.Thread(target=interrupt_once_waiting, daemon=True).start()
    waiting.set()
    with pytest.raises(KeyboardInterrupt):
        cockpit.wait()
    assert cockpit.state.status == "stopped"
    record = json.loads((Path(runner.log_dir) / "run.json").read_text())
    assert record["status"] == "stopped"
    assert Path(record["last_checkpoint"]).name == f"iter_{runner.iter}.pth"
    assert Path(record["last_checkpoint"]).is_file()
    assert "the kernel was interrupted: saving a checkpoint" in capsys.readouterr().out
    assert "died" not in cockpit.view.header.value and "stopped" in cockpit.view.header.value


def test_two_cockpits_at_once(long_run):
    first, second = long_run("first"), long_run("second")
    first.train()
    second.train()
    started(first)
    started(second)
    first.pause()
    iter_second = second.runner.iter
    wait_for(lambda: second.runner.iter > iter_second + 5, what="the second run to go on alone")
    assert first.state.status == "paused" and second.state.status == "running"
    assert first.runner.work_dir != second.runner.work_dir
    second.stop()
    assert second.wait(timeout=30) == "stopped"
    assert first.state.status == "paused"
    first.stop()
    assert first.wait(timeout=30) == "stopped"
    for cockpit in (first, second):
        assert len(trace(cockpit, "train/loss").x) == len(cockpit.state.scalars["train/loss"])


def test_closing_the_widget_stops_its_updates_not_the_run(long_run):
    cockpit = started(long_run().train())
    cockpit.close()
    assert cockpit._follower.done.is_set()
    redraws, iteration = cockpit._follower.redraws, cockpit.runner.iter
    wait_for(lambda: cockpit.runner.iter > iteration + 5, what="training to go on")
    assert cockpit._follower.redraws == redraws


class FailingNet(ToyNet):
    """Raises in its fifth forward pass."""

    def forward(self, inputs, data_samples=None, mode="tensor"):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 5:
            raise RuntimeError("the model broke")
        return super().forward(inputs, data_samples, mode)


def test_a_failed_run_shows_its_error(tmp_path):
    cockpit = Cockpit.from_cfg(tiny_cfg(tmp_path / "work", model=dict(type=FailingNet)), refresh_interval=0.1)
    cockpit.train()
    with pytest.raises(RuntimeError, match="the model broke"):
        cockpit.wait(timeout=60)
    assert cockpit.state.status == "failed"
    assert "the model broke" in cockpit.view.header.value
    assert all(button.disabled for button in cockpit.view.controls.buttons)


def test_attach_to_a_run_started_with_the_cli(tmp_path):
    work = tmp_path / "work"
    command = [sys.executable, "-m", "cockpit.cli", "run", str(ROOT / "demos" / "digits.py"), "--detach",
               "--work-dir", str(work), "--cfg-options", "train_cfg.max_epochs=200"]
    started_cli = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert started_cli.returncode == 0, started_cli.stderr
    pid = int(re.search(r"\(pid (\d+)\)", started_cli.stdout).group(1))
    try:
        cockpit = Cockpit.attach(work, refresh_interval=0.1)
        assert cockpit.runner is None and cockpit.hub is None
        wait_for(lambda: len(cockpit.state.scalars.get("train/loss", ())) > 3, what="the attached run's loss")
        wait_for(lambda: cockpit.view.plot.trace("train/loss") is not None, what="the loss trace")
        click(cockpit, "pause")
        assert "applied" in outcome_of(cockpit, "pause")
        assert cockpit.save()["outcome"] == "applied"
        assert list(work.glob("iter_*.pth"))
        click(cockpit, "stop")
        assert cockpit.wait(timeout=60) == "stopped"
        assert all(button.disabled for button in cockpit.view.controls.buttons)
        cockpit.close()
    finally:
        # It ends by itself once stopped; only a run the test could not stop is killed.
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, 9)


def test_a_long_run_is_sent_downsampled_with_its_spikes():
    state = RunState()
    for step in range(60_000):
        state.apply(ScalarUpdated(step + 1, "train/loss", 9.0 if step == 12_345 else 1.0 / (1 + step / 1000), step))
    assert len(state.scalars["train/loss"]) <= 8192  # the copy folds its past, keeping the spike
    assert max(state.scalars["train/loss"].maxs) == 9.0
    plot = ScalarPlot(max_points=600)
    plot.show(state)
    raw = plot.trace("train/loss")
    assert len(raw.x) <= 600 and max(raw.y) == 9.0
    assert len(plot.trace("train/loss (smoothed)").x) <= 600


def test_importing_cockpit_loads_no_ui_package():
    code = "import sys, cockpit; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'plotly')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_cockpit_can_wrap_a_runner_built_elsewhere(make_runner):
    runner = make_runner(train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    cockpit = Cockpit(runner, refresh_interval=0.1).train()
    assert cockpit.wait(timeout=60) == "finished"
    assert runner.serve and cockpit.runner is runner
    assert len(trace(cockpit, "train/loss").x) == 8
    with pytest.raises(RuntimeError, match="trained already"):
        cockpit.train()
    cockpit.close()


def test_commands_before_training_are_refused_with_a_reason(tmp_path):
    cockpit = Cockpit.from_cfg(copy.deepcopy(tiny_cfg(tmp_path / "work")))
    answer = cockpit.save()
    assert answer["outcome"] == "rejected" and "train()" in answer["message"]
    # The buttons are there (the run's command list is known before it trains), and off.
    assert "Save checkpoint" in [button.description for button in cockpit.view.controls.buttons]
    assert all(button.disabled for button in cockpit.view.controls.buttons)
    cockpit.close()


# --- the controls, generated from the run's command list (no run needed) ---------------------------
HOOK_COMMAND = {"name": "export", "label": "Export ONNX", "key": "e", "description": "write the model as ONNX",
                "args": [], "usage": "export", "confirm": None, "while_paused": True, "when": "live"}


def hand_made_view(commands: list[dict] = (*COMMANDS, HOOK_COMMAND), status: str = "running"):
    """A widget drawn from a snapshot with ``commands``, and the list its buttons send to."""
    sent: list[tuple[str, ...]] = []
    view = CockpitView(lambda *command: sent.append(command))
    view.connected = True
    state = RunState()
    state.load_snapshot({**build_snapshot(), "status": status,
                         "info": {**build_snapshot()["info"], "commands": list(commands)}})
    view.refresh(state)
    return view, state, sent


def test_buttons_come_from_the_command_list():
    view, _, sent = hand_made_view()
    controls = view.controls
    labels = {button.description: button for button in controls.buttons}
    # One per command without a required argument (the hook's too), the text command beside its field;
    # the checkpoint command is on each checkpoint row instead.
    assert list(labels) == ["Validate", "Save checkpoint", "Pause", "Continue", "Stop", "Set learning rate",
                            "Export ONNX"]
    assert [b.description for b in controls.button_row.children] == [
        "Validate", "Save checkpoint", "Pause", "Continue", "Stop", "Export ONNX"]
    assert controls.field("set").placeholder == "a learning rate (0.01), or a factor (*0.5) that scales it"
    assert all(list(row.buttons) == ["resume"] for row in view.checkpoints.rows) and view.checkpoints.rows
    assert labels["Export ONNX"].tooltip == "write the model as ONNX"
    controls.button("export").click()
    controls.button("val").click()
    controls.field("set").value = " ×0.5 "
    controls.button("set").click()
    assert sent == [("export",), ("val",), ("set", "×0.5")]  # the run reads the text, not the view
    controls.field("set").value = ""
    controls.button("set").click()
    assert sent[-1] == ("set", "×0.5") and "fill in lr first" in controls.outcome.value


def test_a_command_that_asks_first_sends_only_after_yes():
    view, _, sent = hand_made_view()
    controls = view.controls
    controls.button("stop").click()
    assert controls.confirm.asking and "Stop the run?" in controls.confirm.question.value and sent == []
    controls.confirm.no.click()
    assert not controls.confirm.asking and sent == []
    controls.button("stop").click()
    controls.confirm.yes.click()
    assert not controls.confirm.asking and sent == [("stop",)]

    checkpoints = view.checkpoints
    row = checkpoints.rows[0]
    row.buttons["resume"].click()
    assert checkpoints.confirm.asking and f"Resume from {Path(row.path).name}?" in checkpoints.confirm.question.value
    checkpoints.confirm.yes.click()
    assert sent[-1] == ("resume", row.path)


def test_pause_and_continue_take_turns_with_the_status():
    view, state, _ = hand_made_view()
    controls = view.controls

    def shown() -> list[str]:
        return [b.description for b in controls.buttons if b.layout.display != "none"]

    assert "Pause" in shown() and "Continue" not in shown()
    state.apply(StatusChanged(state.seq + 1, Status.PAUSED))
    view.refresh(state)
    assert "Continue" in shown() and "Pause" not in shown()
    assert controls.button("continue").button_style == "warning"
    state.apply(StatusChanged(state.seq + 1, Status.RUNNING))
    view.refresh(state)
    assert "Pause" in shown() and "Continue" not in shown()
    # Once the run ended, nothing can be sent, and an open question goes away.
    controls.button("stop").click()
    state.apply(StatusChanged(state.seq + 1, Status.FINISHED))
    view.refresh(state)
    assert all(button.disabled for button in controls.buttons) and not controls.confirm.asking


def test_a_run_that_deleted_a_checkpoint_drops_its_row():
    from cockpit.events import CheckpointRemoved

    view, state, _ = hand_made_view()
    before = [row.path for row in view.checkpoints.rows]
    state.apply(CheckpointRemoved(state.seq + 1, before[-1], "rotation"))
    view.refresh(state)
    assert [row.path for row in view.checkpoints.rows] == before[:-1]
    assert "1 removed by rotation" in view.checkpoints.title.value


def test_the_scalar_grid_shows_a_page_at_a_time():
    state = RunState()
    keys = [f"train/part_{index:02d}" for index in range(10)]
    for key in keys:
        for step, value in ((1, 0.5), (2, 0.4)):
            state.apply(ScalarUpdated(seq=0, key=key, step=step, value=value))
    grid = ScalarGrid(page_size=4)
    grid.selected_index = 0
    grid.show(state)
    assert [trace.name for trace in grid.figure.data] == keys[:4]
    assert "10 of 10 scalars · page 1 of 3" in grid.count.value
    assert grid.previous.disabled and not grid.next.disabled and grid.next.layout.display is None
    grid.next.click()
    grid.next.click()
    assert [trace.name for trace in grid.figure.data] == keys[8:]
    assert "page 3 of 3" in grid.count.value and grid.next.disabled
    grid.next.click()  # past the last page: stays
    assert [trace.name for trace in grid.figure.data] == keys[8:]
    grid.filter.value = "part_0"  # a new filter starts at its first page
    assert [trace.name for trace in grid.figure.data] == keys[:4] and "page 1 of 3" in grid.count.value
    grid.filter.value = "part_01"
    assert [trace.name for trace in grid.figure.data] == ["train/part_01"]
    assert "page" not in grid.count.value and grid.next.layout.display == "none"
