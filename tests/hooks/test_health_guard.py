"""The health guard in one process: what trips it, what each answer does, the fallback, its config,
its notifier, and how views see an alert. Training runs in a thread; the test waits on the hub."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from support import tiny_cfg, wait_for

from cockpit import Hook, Runner
from cockpit.checkpoint import read_pointer
from cockpit.errors import ConfigError
from cockpit.events import GuardTripped, InfoUpdated, decode_event, encode_event
from cockpit.hooks.health import HealthGuardHook
from cockpit.notify import Notifier
from cockpit.viewstate import RunState


class Poison(Hook):
    """Makes the loss NaN (``scale=nan``) or huge (a spike) from iteration ``at`` for ``length`` iterations;
    ``once`` only the first time."""

    priority = "HIGHEST"

    def __init__(self, at: int, scale: float = float("nan"), once: bool = True, length: int = 1) -> None:
        self.at, self.scale, self.once, self.length, self.fired = at, scale, once, length, 0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.at <= runner.iter + 1 < self.at + self.length and not (self.once and self.fired >= self.length):
            self.fired += 1
            data_batch[0].mul_(self.scale)


class Hold(Hook):
    """Stands still after iteration ``at`` until the file ``release`` exists."""

    def __init__(self, at: int, release: Path) -> None:
        self.at, self.release = at, str(release)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == self.at:
            wait_for(lambda: Path(self.release).exists(), 60, "the release")


def build(tmp_path: Path, guard: dict[str, Any] | None, hooks: list[Hook] = (), **overrides: Any) -> Runner:
    cfg = tiny_cfg(tmp_path / "work", custom_hooks=list(hooks), default_hooks=dict(logger=None), **overrides)
    cfg["health_guard"] = guard
    return Runner.from_cfg(cfg, log_to_console=False)


class Training:
    """``runner.train()`` in a thread; ``join`` re-raises what it raised."""

    def __init__(self, runner: Runner) -> None:
        self.runner, self.error = runner, None
        self.thread = threading.Thread(target=self._train, daemon=True)
        self.thread.start()

    def _train(self) -> None:
        try:
            self.runner.train()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            self.error = error

    def join(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "training did not end"
        if self.error is not None:
            raise self.error


def alert_of(runner: Runner) -> dict[str, Any]:
    return wait_for(lambda: runner.message_hub.get_info("guard_alert"), 30, "a guard alert")


def guard_of(runner: Runner) -> HealthGuardHook:
    return next(h for h in runner.hooks if isinstance(h, HealthGuardHook))


def finite(runner: Runner) -> bool:
    return all(torch.isfinite(p).all() for p in runner.model.parameters())


# --- config -------------------------------------------------------------------------------------
def test_the_guard_is_on_by_default_and_none_turns_it_off(make_runner):
    assert any(isinstance(h, HealthGuardHook) for h in make_runner().hooks)
    assert not any(isinstance(h, HealthGuardHook) for h in make_runner(health_guard=False).hooks)
    cfg = tiny_cfg("work")
    cfg["health_guard"] = None
    runner = Runner.from_cfg(cfg, log_to_console=False)
    assert not any(isinstance(h, HealthGuardHook) for h in runner.hooks)


def test_the_guard_is_not_one_of_mmengines_default_hooks():
    from cockpit.build import DEFAULT_HOOKS

    assert all(spec["type"] != "HealthGuardHook" for spec in DEFAULT_HOOKS.values())


def test_an_unknown_option_is_named_with_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, dict(spike_treshold=3))
    text = str(caught.value)
    assert "health_guard.spike_treshold" in text
    assert "did you mean 'spike_threshold'" in text
    assert "answer_timeout" in text and "notify_webhook" in text


@pytest.mark.parametrize(("guard", "words"), [
    (dict(fallback="explode"), "fallback must be one of"),
    (dict(notify_command="echo hi"), "list of strings"),
    (dict(notify_webhook="ftp://x"), "http:// or https://"),
    ("yes", "must be a dict of options"),
])
def test_bad_values_are_clear(tmp_path, guard, words):
    with pytest.raises(ConfigError, match="health_guard") as caught:
        build(tmp_path, guard)
    assert words in str(caught.value)


# --- non-finite losses --------------------------------------------------------------------------
def test_a_nan_loss_pauses_and_the_fallback_rolls_back(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=0.5), [Poison(12)])
    training = Training(runner)
    alert = alert_of(runner)
    assert (alert["kind"], alert["step"], alert["fallback"]) == ("nonfinite", 11, "rollback")
    training.join()
    assert runner.message_hub.status == "finished"
    assert guard_of(runner).rollbacks == {"nonfinite": 1}
    assert runner.message_hub.get_info("guard_alert") is None
    assert finite(runner)


def test_the_rollback_command_resumes_from_the_last_good_checkpoint(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=60), [Poison(12)])
    training = Training(runner)
    alert_of(runner)
    assert runner.message_hub.status == "paused"
    request = runner.control.submit("guard-rollback", ["*0.5"])
    assert request.wait(30) and request.outcome == "applied", request.message
    assert "epoch_1.pth" in request.message and "lr 0.1 -> 0.05" in request.message
    training.join()
    assert runner.message_hub.status == "finished"
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(0.05)


def test_the_same_trip_after_a_fallback_rollback_stops_at_the_last_good_state(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=0.3), [Poison(12, once=False)])
    training = Training(runner)
    training.join()
    assert runner.message_hub.status == "stopped"
    latest = read_pointer(tmp_path / "work")
    assert latest.name == "iter_8.pth", "the newest checkpoint is not the last good state"
    assert finite(runner)


def test_continue_and_stop_without_a_good_checkpoint(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=60), [Poison(3, once=False)])
    training = Training(runner)
    alert_of(runner)
    refused = runner.control.submit("guard-rollback")
    assert refused.outcome == "rejected" and "no checkpoint was saved before iter 3" in refused.message
    request = runner.control.submit("guard-stop")
    assert request.wait(30) and "without a checkpoint" in request.message
    training.join()
    assert runner.message_hub.status == "stopped"
    assert not list((tmp_path / "work").glob("*.pth")), "a poisoned state was saved"


def test_an_explicit_on_nonfinite_skip_trains_on_past_a_nan_loss(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=60), [Poison(12)],
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), on_nonfinite="skip"))
    runner.train()
    assert runner.message_hub.status == "finished" and runner.message_hub.get_info("skipped_steps") == 1


def test_a_command_without_an_alert_is_refused(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=60), [Poison(12)])
    training = Training(runner)
    alert_of(runner)
    assert runner.control.submit("guard-continue").wait(30)
    training.join()
    assert runner.message_hub.status == "finished"
    with pytest.raises(Exception, match="no health alert"):
        guard_of(runner)._active()


# --- spikes ---------------------------------------------------------------------------------------
def test_a_loss_spike_trips_the_guard(tmp_path):
    guard = dict(answer_timeout=60, spike_min_history=8, spike_threshold=8.0)
    runner = build(tmp_path, guard, [Poison(12, scale=1e4, length=3)],
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=1e-4)))
    training = Training(runner)
    alert = alert_of(runner)
    assert alert["kind"] == "spike" and alert["step"] == 13, alert  # the third loss in a row over the limit
    runner.control.submit("guard-continue").wait(30)
    training.join()
    assert runner.message_hub.status == "finished"


def test_one_outlier_batch_is_no_spike(tmp_path):
    runner = build(tmp_path, dict(answer_timeout=0.2, spike_min_history=8, spike_threshold=8.0), [Poison(12, scale=1e4)],
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=1e-4)))
    runner.train()
    assert runner.message_hub.status == "finished"
    assert not any("health guard tripped" in message for _, _, message in runner.message_hub.logs())


def test_a_normal_noisy_loss_does_not_trip(tmp_path):
    cfg_model = dict(type=tiny_cfg("x")["model"]["type"], dropout=0.3)
    runner = build(tmp_path, dict(answer_timeout=0.2, spike_min_history=8, spike_threshold=8.0), model=cfg_model,
                   train_cfg=dict(by_epoch=True, max_epochs=6, val_interval=10))
    runner.train()
    assert runner.message_hub.status == "finished"
    assert guard_of(runner).rollbacks == {}
    assert not any("health guard tripped" in message for _, _, message in runner.message_hub.logs())


# --- stalls ----------------------------------------------------------------------------------------
def test_a_stall_trips_then_the_run_waits_for_an_answer(tmp_path):
    hold = Hold(10, tmp_path / "release")
    runner = build(tmp_path, dict(answer_timeout=60, stall_factor=5, stall_min_seconds=0.3), [hold])
    training = Training(runner)
    alert = alert_of(runner)
    assert alert["kind"] == "stall" and "no iteration for" in alert["message"]
    Path(hold.release).touch()
    wait_for(lambda: runner.message_hub.status == "paused", 30, "the pause at the next safe point")
    assert runner.control.submit("guard-continue").wait(30)
    training.join()
    assert runner.message_hub.status == "finished"


# --- notifier ----------------------------------------------------------------------------------------
def test_the_notify_command_gets_the_alert_on_stdin_and_in_its_environment(tmp_path):
    out = tmp_path / "alert.json"
    script = ("import json, os, sys; data = json.load(sys.stdin); "
              f"data['env'] = os.environ['COCKPIT_ALERT_KIND']; open({str(out)!r}, 'w').write(json.dumps(data))")
    notifier = Notifier(command=[sys.executable, "-c", script])
    for thread in notifier.notify({"kind": "spike", "message": "m", "step": 3}):
        thread.join(30)
    data = json.loads(out.read_text())
    assert data == {"kind": "spike", "message": "m", "step": 3, "env": "spike"}


def test_a_failing_webhook_is_logged_not_raised(caplog):
    notifier = Notifier(webhook="http://127.0.0.1:9/nothing", timeout=0.5)
    for thread in notifier.notify({"kind": "stall"}):
        thread.join(30)
    assert "the alert webhook http://127.0.0.1:9/nothing failed" in caplog.text


# --- views -----------------------------------------------------------------------------------------
def test_views_keep_the_active_alert_ring_once_and_clear_it():
    event = GuardTripped(5, "nonfinite", "the loss is nan", 11, ("guard-continue", "guard-rollback"), "rollback", 1.0)
    assert decode_event(encode_event(event)) == event
    state = RunState()
    state.load_snapshot({"seq": 4, "info": {}})
    state.receive([encode_event(event)])
    assert state.guard_alert["kind"] == "nonfinite" and state.guard_alert["choices"] == ["guard-continue",
                                                                                         "guard-rollback"]
    assert state.take_guard_bell() and not state.take_guard_bell()
    assert "status" in state.take_changes()
    state.apply(InfoUpdated(6, "guard_alert", None))
    assert state.guard_alert is None
