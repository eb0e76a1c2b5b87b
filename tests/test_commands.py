"""Commands as data: what a run publishes about each command, argument parsing, and ``set lr``."""

from __future__ import annotations

import pytest

from cockpit import Arg, Command, CommandRejected, Hook
from cockpit.checkpoint import save_checkpoint
from cockpit.commands import CommandSet, builtin_commands, parse_lr


def test_every_builtin_describes_label_key_arguments_confirmation_and_state() -> None:
    described = {c["name"]: c for c in CommandSet(
        {c.name: c for c in builtin_commands()}).describe()}
    assert set(described) == {"val", "save", "resume", "pause", "continue", "stop", "set"}
    resume = described["resume"]
    assert resume["key"] == "r" and resume["label"].startswith("Resume")
    assert resume["args"][0] == {"name": "checkpoint", "help": "a checkpoint name or path, 'latest' or 'best'",
                                 "kind": "checkpoint", "choices": [], "optional": False}
    assert resume["args"][1]["choices"] == ["trust"] and resume["args"][1]["optional"]
    assert resume["usage"] == "resume <checkpoint> [trust]"
    assert "{0}" in resume["confirm"]
    assert described["stop"]["confirm"] and described["stop"]["usage"] == "stop [nosave]"
    # pause and continue share a key and are offered in opposite states
    assert (described["pause"]["key"], described["pause"]["when"]) == ("p", "running")
    assert (described["continue"]["key"], described["continue"]["when"]) == ("p", "paused")
    assert all(c["while_paused"] for c in described.values())


@pytest.mark.parametrize(("text", "expected"), [
    ("0.01", "lr=0.01"), ("lr=0.01", "lr=0.01"), (" lr = 0.01 ", "lr=0.01"),
    ("*0.5", "lr*=0.5"), ("x0.5", "lr*=0.5"), ("×0.5", "lr*=0.5"), ("lr*=0.5", "lr*=0.5"),
])
def test_the_core_parses_every_learning_rate_form_the_views_accept(text: str, expected: str) -> None:
    assert parse_lr([text]) == (expected,)


@pytest.mark.parametrize(("text", "reason"), [
    ("momentum=0.9", "only the learning rate"), ("fast", "not a number"), ("-1", ">= 0"), ("nan", "finite"),
    ("lr=inf", "finite"),
])
def test_bad_learning_rates_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(CommandRejected, match=reason):
        parse_lr([text])


def test_argument_count_and_choices_are_checked_at_submit_time() -> None:
    stop = next(c for c in builtin_commands() if c.name == "stop")
    assert stop.check([]) == () and stop.check(["nosave"]) == ("nosave",)
    with pytest.raises(CommandRejected, match="nosave"):
        stop.check(["now"])
    save = next(c for c in builtin_commands() if c.name == "save")
    with pytest.raises(CommandRejected, match="no arguments"):
        save.check(["x"])


def test_hook_commands_may_name_arguments_by_string_and_must_not_steal_a_key() -> None:
    command = Command("note", "put a note", lambda run, text: text, args=("text",))
    assert command.args == (Arg("text"),) and command.label == "Note"
    commands = CommandSet()
    for builtin in builtin_commands():
        commands.add(builtin)
    with pytest.raises(ValueError, match="key 's'"):
        commands.add(Command("snapshot", "x", lambda run: "", key="s"))
    with pytest.raises(ValueError, match="when must be"):
        Command("x", "x", lambda run: "", when="sometimes")


def test_a_hook_command_reaches_the_published_list(make_runner) -> None:
    class Notes(Hook):
        def commands(self) -> list[Command]:
            return [Command("note", "put a note", lambda run, text: text, key="n", args=(Arg("text", "what"),))]

    runner = make_runner(custom_hooks=[Notes()])
    published = {c["name"]: c for c in runner.message_hub.get_info("commands")}
    assert published["note"]["key"] == "n" and published["note"]["args"][0]["help"] == "what"
    request = runner.control.submit("note", ["hello"])
    assert not request.done.is_set()  # queued, applied at the next safe point


class _SetAt(Hook):
    """Sends ``set <value>`` after iteration ``at`` and records the lr at each iteration."""

    def __init__(self, at: int, value: str) -> None:
        self.at, self.value, self.lrs, self.request = at, value, [], None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.lrs.append(runner.optim_wrapper.param_groups[0]["lr"])
        if runner.iter == self.at:
            self.request = runner.control.submit("set", [self.value])


def _warmup_run(make_runner, hook: _SetAt) -> _SetAt:
    # Warm-up, then a decay computed from the scheduler's base value (0.1), not from the current lr.
    scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=10),
                 dict(type="CosineAnnealingWarmRestarts", T_0=6, by_epoch=False, begin=10, end=16)]
    runner = make_runner(param_scheduler=scheduler, custom_hooks=[hook],
                         default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=100)))
    runner.train()
    return next(h for h in runner.hooks if isinstance(h, _SetAt))  # the config was copied, hooks too


def test_set_lr_during_warm_up_scales_the_schedule_instead_of_being_overwritten(make_runner) -> None:
    plain = _warmup_run(make_runner, _SetAt(at=-1, value="0"))
    steered = _warmup_run(make_runner, _SetAt(at=3, value="0.08"))
    assert steered.request.outcome == "applied", steered.request.message
    assert "scaled" in steered.request.message
    # Applied at the safe point after iteration 3, when the scheduler had already moved the lr
    # to iteration 4's value (0.05): 0.08 replaces that.
    factor = 0.08 / plain.lrs[4]
    assert steered.lrs[4] == pytest.approx(0.08) and factor == pytest.approx(1.6)
    # From the next iteration on, the run follows the same warm-up shape, scaled by the factor...
    for plain_lr, steered_lr in zip(plain.lrs[4:], steered.lrs[4:], strict=True):
        assert steered_lr == pytest.approx(plain_lr * factor, rel=1e-9)
    # ...so the decay starts from the peak scaled by the factor, not from the old peak.
    assert plain.lrs[10] == pytest.approx(0.1)
    assert steered.lrs[10] == pytest.approx(0.1 * factor, rel=1e-9)


def test_set_refuses_a_learning_rate_the_parameters_dtype_cannot_hold(make_runner) -> None:
    # float32 holds at most ~3.4e38: lr=1e308 would overflow at the next step and end the run.
    runner = make_runner(default_hooks=dict(checkpoint=None, logger=None))
    runner.train_loop  # noqa: B018
    set_lr = next(c for c in builtin_commands() if c.name == "set")
    with pytest.raises(CommandRejected, match="float32"):
        set_lr.handler(runner, "lr=1e308")
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(0.1)  # untouched
    assert set_lr.handler(runner, "lr=1e-5") == "lr 0.1 -> 1e-05"
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(1e-5)


class _Pickled:
    """Not loadable with weights_only=True."""


def test_a_live_resume_trusts_a_pickle_only_when_that_request_says_so(make_runner, tmp_path) -> None:
    import torch

    runner = make_runner(default_hooks=dict(logger=None))
    runner.train()
    good = runner.work_dir / "epoch_2.pth"
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["meta"]["extra"] = _Pickled()
    save_checkpoint(checkpoint, runner.work_dir / "pickled.pth")  # a new checksum for the edited contents
    live = make_runner(default_hooks=dict(logger=None), train_cfg=dict(by_epoch=True, max_epochs=3))
    live.trust_checkpoints = True  # --trust-checkpoint at start: not inherited by live commands
    live.train_loop  # noqa: B018
    resume = next(c for c in builtin_commands() if c.name == "resume")
    with pytest.raises(CommandRejected, match="resume pickled.pth trust"):
        resume.handler(live, "pickled.pth")
    assert live.iter == 0
    assert "resumed from pickled.pth" in resume.handler(live, "pickled.pth", "trust")
    assert live.iter == 16
