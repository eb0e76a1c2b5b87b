"""The command queue in one process: checked at once, applied at safe points, every outcome an event.

Commands are submitted through ``runner.control`` from a hook (at a known iteration) or from
another thread, exactly as the channel server does for remote views; no sockets here.
"""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import pytest
import torch
from support import ToyNet, tiny_cfg, wait_for

from cockpit import Hook, Runner
from cockpit import events as ev
from cockpit.checkpoint import load_checkpoint, read_pointer
from cockpit.commands import Command, CommandRejected

EPOCH = 8  # iterations per epoch of tiny_cfg (64 samples, batch 8)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny steps are fastest (and identical run to run) on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Script(Hook):
    """Submits commands once, after given iterations (0-based index of the iteration just run)."""

    priority = "LOWEST"

    def __init__(self, plan: dict[int, list[tuple[str, ...]]]) -> None:
        self.plan = plan
        self.requests: list[Any] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for name, *args in self.plan.pop(runner.iter, ()):
            self.requests.append(runner.control.submit(name, args))

    def request(self, name: str) -> Any:
        return next(r for r in self.requests if r.name == name)


class Recorder(Hook):
    """Notes where each iteration starts, (epoch, iter, optimizer lr), and the weights it starts from."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int, float]] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.starts.append((runner.epoch, runner.iter, runner.optim_wrapper.param_groups[0]["lr"]))
        self.weights[runner.iter] = {k: v.clone() for k, v in runner.model.state_dict().items()}


def make(tmp_path, *hooks: Hook, name: str = "work", by_epoch: bool = True, **overrides: Any) -> Runner:
    """A quiet, seeded 2-epoch run (16 iterations) with dropout and momentum, hooks registered as given."""
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
        checkpoint = dict(type="CheckpointHook", interval=1)
    else:
        train_cfg = dict(by_epoch=False, max_iters=2 * EPOCH, val_interval=EPOCH)
        checkpoint = dict(type="CheckpointHook", interval=EPOCH, by_epoch=False)
    keys = dict(model=dict(type=ToyNet, dropout=0.2), train_cfg=train_cfg,
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
                randomness=dict(seed=11), default_hooks=dict(logger=None, checkpoint=checkpoint))
    keys.update(overrides)
    runner = Runner.from_cfg(tiny_cfg(tmp_path / name, **keys), log_to_console=False)
    for hook in hooks:
        runner.register_hook(hook)
    return runner


def weights(runner: Runner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].equal(b[key]), f"weights differ at {key}"


def series(runner: Runner, key: str) -> tuple[list[int], list[float]]:
    steps, values, _, _ = runner.message_hub.get_scalar(key).series()
    return steps, values


@pytest.fixture
def reference(tmp_path):
    """The undisturbed run: its final weights and its train/loss and train/lr trajectories."""
    runner = make(tmp_path, name="reference")
    runner.train()
    return {"weights": weights(runner), "loss": series(runner, "train/loss"), "lr": series(runner, "train/lr")}


def command_events(events: list[ev.Event]) -> list[ev.Event]:
    return [e for e in events if isinstance(e, (ev.CommandAccepted, ev.CommandFinished))]


# --- refused at once --------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "args", "reason"), [
    ("bogus", [], "unknown command 'bogus'; this run understands: continue, guard-continue, guard-rollback, guard-stop, pause, resume, save, set, stop, val"),
    ("set", ["lr=abc"], "'abc' is not a number"),
    ("set", ["momentum=0.5"], "only the learning rate can be set"),
    ("set", ["lr=-1"], "finite number >= 0"),
    ("set", ["lr=nan"], "finite number >= 0"),
    ("set", ["lr*=inf"], "finite number >= 0"),
    ("set", [], "set takes one argument"),
    ("set", ["lr=1", "lr=2"], "set takes one argument"),
    ("resume", [], "resume takes one argument"),
    ("resume", ["a.pth", "b.pth"], "must be 'trust'"),
    ("save", ["now"], "save takes no arguments"),
    ("val", ["all"], "val takes no arguments"),
    ("pause", ["5"], "pause takes no arguments"),
    ("continue", ["x"], "continue takes no arguments"),
    ("stop", ["later"], "'nosave'"),
])
def test_unknown_commands_and_bad_arguments_are_refused_at_once(tmp_path, name, args, reason):
    runner = make(tmp_path)
    events = runner.message_hub.subscribe()
    request = runner.control.submit(name, args)
    assert request.done.is_set(), "a bad command must be refused on the spot, not queued"
    assert request.id and request.outcome == "rejected"
    assert reason in request.message
    runner.control.drain()  # nothing was queued, so nothing is applied now
    got = command_events(events.poll())
    assert [(type(e), e.id, e.outcome) for e in got] == [(ev.CommandFinished, request.id, "rejected")]
    assert runner.optim_wrapper.param_groups[0]["lr"] == 0.1
    assert not runner.control.paused


def test_every_command_gets_an_id_then_accepted_then_finished_events(tmp_path):
    script = Script({1: [("save",)], 2: [("val",), ("bogus",)], 3: [("set", "lr*=1")], 4: [("continue",)]})
    runner = make(tmp_path, script)
    events = runner.message_hub.subscribe()
    runner.train()
    got = command_events(events.poll())
    requests = script.requests
    assert len({r.id for r in requests}) == len(requests) == 5
    for request in requests:
        accepted = [e for e in got if isinstance(e, ev.CommandAccepted) and e.id == request.id]
        finished = [e for e in got if isinstance(e, ev.CommandFinished) and e.id == request.id]
        assert len(finished) == 1, request
        assert (finished[0].name, finished[0].outcome, finished[0].message) == (
            request.name, request.outcome, request.message)
        if request.name == "bogus":
            assert not accepted and request.outcome == "rejected"
        else:
            assert len(accepted) == 1, request
            assert (accepted[0].name, tuple(accepted[0].args)) == (request.name, request.args)
            assert accepted[0].seq < finished[0].seq
    outcomes = {r.name: r.outcome for r in requests}
    assert outcomes == {"save": "applied", "val": "applied", "bogus": "rejected", "set": "applied",
                        "continue": "rejected"}
    assert "not paused" in script.request("continue").message


# --- save, val, set ---------------------------------------------------------------------------
def test_save_writes_a_loadable_checkpoint_of_the_current_position(tmp_path):
    script, recorder = Script({4: [("save",)]}), Recorder()
    runner = make(tmp_path, script, recorder)
    runner.train()
    request = script.request("save")
    path = tmp_path / "work" / "iter_5.pth"
    assert request.outcome == "applied" and request.message == f"saved {path}"
    saved = load_checkpoint(path)
    assert (saved["meta"]["epoch"], saved["meta"]["iter"], saved["meta"]["batch_in_epoch"]) == (0, 5, 5)
    assert_same_weights(saved["state_dict"], recorder.weights[5])  # the weights after 5 steps
    assert runner.iter == 2 * EPOCH, "training did not carry on after the save"


def test_save_without_a_checkpoint_hook_still_saves_and_the_run_goes_on(tmp_path):
    # The run's checkpointer saves on request even with no CheckpointHook deciding when.
    script = Script({2: [("save",)]})
    runner = make(tmp_path, script, default_hooks=dict(logger=None, checkpoint=None))
    runner.train()
    assert script.request("save").outcome == "applied", script.request("save").message
    assert (runner.work_dir / "iter_3.pth").is_file()  # submitted after iteration index 2
    assert runner.message_hub.status == "finished" and runner.iter == 2 * EPOCH


def test_val_runs_mid_epoch_and_leaves_training_untouched(tmp_path, reference):
    script = Script({2: [("val",)]})
    runner = make(tmp_path, script)
    runner.train()
    request = script.request("val")
    assert request.outcome == "applied" and "accuracy/top1=" in request.message
    steps, values = series(runner, "val/accuracy/top1")
    assert steps == [3, EPOCH, 2 * EPOCH], "no validation after 3 iterations, in the middle of epoch 1"
    assert f"{values[0]:.4f}" in request.message
    assert runner.message_hub.status == "finished"
    assert_same_weights(weights(runner), reference["weights"])
    assert series(runner, "train/loss") == reference["loss"]


def test_val_without_validation_is_rejected(tmp_path):
    script = Script({1: [("val",)]})
    runner = make(tmp_path, script, val_dataloader=None, val_evaluator=None, val_cfg=None)
    runner.train()
    assert script.request("val").outcome == "rejected"
    assert "no validation" in script.request("val").message
    assert runner.iter == 2 * EPOCH


def test_set_lr_reaches_the_optimizer_and_the_next_checkpoint_and_survives_resume(tmp_path):
    script, recorder = Script({2: [("set", "lr=0.05")], 5: [("set", "lr*=0.5")], 6: [("save",)]}), Recorder()
    runner = make(tmp_path, script, recorder)
    runner.train()
    first, second = (r for r in script.requests if r.name == "set")
    assert (first.outcome, first.message) == ("applied", "lr 0.1 -> 0.05")
    assert (second.outcome, second.message) == ("applied", "lr 0.05 -> 0.025")
    steps, lrs = series(runner, "train/lr")
    expected = [0.1] * 3 + [0.05] * 3 + [0.025] * (2 * EPOCH - 6)
    assert steps == list(range(2 * EPOCH)) and lrs == pytest.approx(expected, rel=1e-12)
    assert [lr for _, _, lr in recorder.starts] == pytest.approx(expected, rel=1e-12)
    assert [m["kind"] for m in runner.message_hub.markers] == ["lr", "lr"]
    saved = load_checkpoint(tmp_path / "work" / "iter_7.pth")
    assert saved["meta"]["iter"] == 7
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == pytest.approx([0.025])

    # A later run resumed from that checkpoint keeps the lr that was set, not the config's 0.1.
    resumed_recorder = Recorder()
    resumed = make(tmp_path, resumed_recorder, resume=str(tmp_path / "work" / "iter_7.pth"),
                   train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1))
    resumed.train()
    assert resumed_recorder.starts[0][1] == 7
    assert [lr for _, _, lr in resumed_recorder.starts] == pytest.approx([0.025] * (3 * EPOCH - 7))


# --- resume -----------------------------------------------------------------------------------
@pytest.mark.parametrize("by_epoch", [True, False], ids=["epochs", "iters"])
@pytest.mark.parametrize("which", ["latest", "absolute", "relative"])
def test_resume_rewinds_the_live_run_and_replays_it_exactly(tmp_path, which, by_epoch):
    # Save after 10 iterations (mid-epoch 2), resume from it after 14: iterations 10-13 run twice.
    path = tmp_path / "work" / "iter_10.pth"
    target = {"latest": "latest", "absolute": str(path), "relative": path.name}[which]
    script, recorder = Script({9: [("save",)], 13: [("resume", target)]}), Recorder()
    runner = make(tmp_path, script, recorder, by_epoch=by_epoch)
    events = runner.message_hub.subscribe()
    runner.train()
    reference = make(tmp_path, name="reference", by_epoch=by_epoch)  # built after: building reseeds
    reference.train()

    request = script.request("resume")
    assert request.outcome == "applied", request.message
    assert request.message == f"resumed from iter_10.pth: iter 14 -> 10 (epoch {1 if by_epoch else 0})"
    iters = [i for _, i, _ in recorder.starts]
    assert iters == list(range(14)) + list(range(10, 2 * EPOCH)), "the run did not continue from the checkpoint"
    assert recorder.starts[14][0] == (1 if by_epoch else 0)
    assert_same_weights(recorder.weights[10], load_checkpoint(path)["state_dict"])
    # The hub went back too: its history is the checkpoint's, then the replayed steps.
    saw_resync = [e for e in events.poll() if isinstance(e, ev.InfoUpdated) and e.key == "resynced"]
    assert saw_resync, "views were not told to re-read the hub"
    assert series(runner, "train/loss") == series(reference, "train/loss")
    assert series(runner, "train/lr") == series(reference, "train/lr")
    assert_same_weights(weights(runner), weights(reference))
    assert [m["kind"] for m in runner.message_hub.markers] == ["resume"]
    assert runner.message_hub.get_info("resumed_from") == str(path)


def test_resume_refuses_missing_foreign_and_unsafe_files_and_changes_nothing(tmp_path, reference):
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.ones(3), "step": 4}, foreign)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"meta": {}, "state_dict": {}, "extra": pickle.PickleError("needs a global")}, unsafe)
    script, recorder = Script({
        0: [("resume", "latest"), ("resume", "best")],
        3: [("resume", str(tmp_path / "missing.pth"))],
        4: [("resume", str(foreign))],
        5: [("resume", str(unsafe))],
    }), Recorder()
    runner = make(tmp_path, script, recorder)
    runner.train()
    outcomes = [(r.outcome, r.message) for r in script.requests]
    assert [o for o, _ in outcomes] == ["rejected"] * 5
    latest, best, missing, foreign_msg, unsafe_msg = (m for _, m in outcomes)
    assert "no checkpoint yet" in latest
    assert "no best checkpoint yet" in best
    assert "missing.pth does not exist" in missing
    assert "not a Cockpit training checkpoint" in foreign_msg and str(foreign) in foreign_msg
    assert "refused to load" in unsafe_msg
    assert [i for _, i, _ in recorder.starts] == list(range(2 * EPOCH))
    assert_same_weights(weights(runner), reference["weights"])
    assert series(runner, "train/loss") == reference["loss"]
    assert runner.resumed_from is None and runner.message_hub.markers == []


def test_resume_from_another_models_checkpoint_is_refused_and_changes_nothing(tmp_path):
    # A real Cockpit checkpoint, but of a wider model: of its tensors only net.3.bias (3 values) fits.
    other = make(tmp_path, name="other", model=dict(type=ToyNet, hidden=16, dropout=0.2))
    other.train()
    foreign = tmp_path / "other" / "epoch_2.pth"
    script, recorder = Script({4: [("resume", str(foreign))]}), Recorder()
    runner = make(tmp_path, script, recorder)
    runner.train()
    undisturbed = Recorder()
    reference = make(tmp_path, undisturbed, name="reference")
    reference.train()
    request = script.request("resume")
    assert request.outcome in ("rejected", "failed") and "does not fit this model" in request.message
    # Right after the refused resume (the start of iteration 5), the model is as it was.
    assert_same_weights(recorder.weights[5], undisturbed.weights[5])
    assert_same_weights(weights(runner), weights(reference))
    assert series(runner, "train/loss") == series(reference, "train/loss")


# --- pause, continue, stop --------------------------------------------------------------------
def _watch(target, errors: list[BaseException]) -> threading.Thread:
    def body() -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_pause_holds_the_run_until_continue_and_commands_still_apply_meanwhile(tmp_path):
    script = Script({2: [("pause",)]})
    runner = make(tmp_path, script)
    hub, control = runner.message_hub, runner.control
    seen: dict[str, Any] = {}
    errors: list[BaseException] = []

    def from_another_thread() -> None:
        try:
            wait_for(lambda: script.requests and script.requests[0].done.is_set(), 30, "the pause to apply")
            seen["pause"] = script.requests[0].outcome
            seen["status"], seen["iter"], seen["info_iter"] = hub.status, runner.iter, hub.get_info("iter")
            time.sleep(1.0)
            seen["status_later"], seen["iter_later"] = hub.status, runner.iter
            seen["info_iter_later"] = hub.get_info("iter")
            again = control.submit("pause")
            save = control.submit("save")
            seen["again"] = (again.wait(10), again.outcome, again.message)
            seen["save"] = (save.wait(10), save.outcome, save.message)
            seen["iter_after_save"] = runner.iter
        finally:
            resume = control.submit("continue")
            seen["continue"] = (resume.wait(10), resume.outcome, resume.message)

    watcher = _watch(from_another_thread, errors)
    runner.train()
    watcher.join(10)
    if errors:
        raise errors[0]
    assert seen["pause"] == "applied"
    assert (seen["status"], seen["iter"]) == ("paused", 3)
    assert (seen["status_later"], seen["iter_later"], seen["info_iter_later"]) == ("paused", 3, seen["info_iter"])
    assert seen["again"] == (True, "rejected", "the run is already paused")
    done, outcome, message = seen["save"]
    assert (done, outcome) == (True, "applied"), "a save while paused must be applied at once"
    assert message.endswith("iter_3.pth") and load_checkpoint(tmp_path / "work" / "iter_3.pth")["meta"]["iter"] == 3
    assert seen["iter_after_save"] == 3
    assert seen["continue"] == (True, "applied", "continuing from iter 3")
    assert hub.status == "finished" and runner.iter == 2 * EPOCH


def test_commands_from_many_threads_all_get_distinct_ids_and_are_all_applied(tmp_path):
    applied: list[str] = []

    class Words(Hook):
        def commands(self):
            return [Command("note", "note a word", lambda runner, word: applied.append(word) or f"noted {word}",
                            args=("word",))]

    script = Script({1: [("pause",)]})
    runner = make(tmp_path, script, Words())
    errors: list[BaseException] = []
    requests: list[Any] = []
    lock = threading.Lock()

    def submitter(n: int) -> None:
        for i in range(25):
            request = runner.control.submit("note", [f"{n}-{i}"])
            with lock:
                requests.append(request)

    def conductor() -> None:
        try:
            wait_for(lambda: script.requests and script.requests[0].done.is_set(), 30, "the pause to apply")
            threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for request in list(requests):
                assert request.wait(10), "a note was not applied while paused"
        finally:
            runner.control.submit("continue")

    watcher = _watch(conductor, errors)
    events = runner.message_hub.subscribe()
    runner.train()
    watcher.join(10)
    if errors:
        raise errors[0]
    assert len(requests) == 100 and len({r.id for r in requests}) == 100
    assert all(r.outcome == "applied" for r in requests)
    assert sorted(applied) == sorted(f"{n}-{i}" for n in range(4) for i in range(25))
    accepted = [e.id for e in events.poll() if isinstance(e, ev.CommandAccepted) and e.name == "note"]
    assert sorted(accepted) == sorted(r.id for r in requests)


class LateCommand(Hook):
    """Submits a command after the last safe point, while the run is ending."""

    def __init__(self) -> None:
        self.request: Any = None

    def after_train(self, runner) -> None:
        self.request = runner.control.submit("save")


def test_a_command_accepted_as_the_run_ends_still_gets_an_outcome(tmp_path):
    late = LateCommand()
    runner = make(tmp_path, late)
    events = runner.message_hub.subscribe()
    runner.train()
    assert late.request.wait(2), "accepted, but never finished: whoever waits for it waits forever"
    assert late.request.outcome in ("applied", "rejected", "failed")
    finished = [e for e in events.poll() if isinstance(e, ev.CommandFinished) and e.id == late.request.id]
    assert len(finished) == 1


@pytest.mark.parametrize("nosave", [False, True], ids=["stop", "stop nosave"])
def test_stop_ends_the_run_after_this_iteration(tmp_path, nosave):
    script = Script({4: [("stop", "nosave") if nosave else ("stop",)]})
    runner = make(tmp_path, script)
    runner.train()
    request = script.request("stop")
    assert request.outcome == "applied"
    assert request.message.endswith("(no checkpoint)" if nosave else "(checkpoint saved)")
    assert runner.iter == 5 and runner.stop_reason == "command 'stop'"
    assert runner.message_hub.status == "stopped"
    work = tmp_path / "work"
    if nosave:
        assert not list(work.glob("*.pth")) and read_pointer(work) is None
    else:
        assert [p.name for p in work.glob("*.pth")] == ["iter_5.pth"]
        assert read_pointer(work) == work / "iter_5.pth"
        assert load_checkpoint(work / "iter_5.pth")["meta"]["iter"] == 5


def test_stop_reaches_a_paused_run(tmp_path):
    script = Script({2: [("pause",)]})
    runner = make(tmp_path, script)
    errors: list[BaseException] = []

    def stop_when_paused() -> None:
        try:
            wait_for(lambda: runner.message_hub.status == "paused", 30, "the run to pause")
        finally:
            assert runner.control.submit("stop").wait(10)

    watcher = _watch(stop_when_paused, errors)
    runner.train()
    watcher.join(10)
    if errors:
        raise errors[0]
    assert runner.iter == 3 and runner.message_hub.status == "stopped"
    assert load_checkpoint(tmp_path / "work" / "iter_3.pth")["meta"]["iter"] == 3


# --- commands from hooks --------------------------------------------------------------------
class Notes(Hook):
    """Offers commands: 'note <text>' (checked at submit), 'explode' (fails), 'refuse' (rejects)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    def commands(self) -> list[Command]:
        def check(args) -> tuple:
            if len(args) != 1:
                raise CommandRejected("note takes one word")
            return tuple(args)

        return [
            Command("note", "put a note in the run info", self.note, args=("text",), parse=check),
            Command("explode", "always fails", self.explode),
            Command("refuse", "always refuses", self.refuse),
        ]

    def note(self, runner, text: str) -> str:
        self.calls.append((text, runner.iter, threading.current_thread().name))
        runner.message_hub.update_info("note", text)
        return f"noted {text}"

    def explode(self, runner) -> str:
        raise RuntimeError("boom")

    def refuse(self, runner) -> str:
        raise CommandRejected("not now")


def test_hook_commands_are_listed_checked_applied_and_cannot_hurt_the_run(tmp_path, reference):
    notes = Notes()
    script = Script({1: [("note", "hello")], 2: [("note",)], 3: [("explode",)], 4: [("refuse",)]})
    runner = make(tmp_path, notes, script)
    listed = {c["name"]: c for c in runner.message_hub.get_info("commands")}
    assert listed["note"]["description"] == "put a note in the run info"
    assert listed["note"]["usage"] == "note <text>" and listed["note"]["label"] == "Note"
    assert {"explode", "refuse", "save", "val", "resume", "pause", "continue", "stop", "set"} <= set(listed)
    assert runner.control.submit("bogus").message.startswith("unknown command 'bogus'; this run understands: "
                                                            "continue, explode, guard-continue, guard-rollback, guard-stop, "
                                                            "note, pause, refuse, resume")
    runner.train()
    by_name = {r.name: [] for r in script.requests}
    for request in script.requests:
        by_name[request.name].append((request.outcome, request.message))
    assert by_name["note"] == [("applied", "noted hello"), ("rejected", "note takes one word")]
    assert by_name["explode"] == [("failed", "RuntimeError: boom")]
    assert by_name["refuse"] == [("rejected", "not now")]
    assert notes.calls == [("hello", 2, threading.current_thread().name)], "applied at the safe point, in training"
    assert runner.message_hub.get_info("note") == "hello"
    assert runner.message_hub.status == "finished"
    assert_same_weights(weights(runner), reference["weights"])


def test_hook_commands_need_unique_names(tmp_path):
    class Shadow(Hook):
        def commands(self):
            return [Command("save", "not the real save", lambda runner: "no")]

    with pytest.raises(ValueError, match="two commands are named 'save'"):
        make(tmp_path, Shadow())
    with pytest.raises(ValueError, match="two commands are named 'note'"):
        make(tmp_path, Notes(), Notes())


def test_a_command_not_allowed_while_paused_waits_for_continue(tmp_path):
    """``Command(while_paused=False)``: 'whether it is applied while the run is paused'."""
    applied_at: list[tuple[int, str]] = []

    class Heavy(Hook):
        def commands(self):
            return [Command("heavy", "only while running", lambda runner: applied_at.append(
                (runner.iter, runner.message_hub.status)) or "done", while_paused=False)]

    script = Script({2: [("pause",)]})
    runner = make(tmp_path, script, Heavy())
    errors: list[BaseException] = []
    seen: dict[str, Any] = {}

    def conductor() -> None:
        try:
            wait_for(lambda: runner.message_hub.status == "paused", 30, "the run to pause")
            heavy = runner.control.submit("heavy")
            seen["done_while_paused"] = heavy.wait(1.0)
        finally:
            runner.control.submit("continue")

    watcher = _watch(conductor, errors)
    runner.train()
    watcher.join(10)
    if errors:
        raise errors[0]
    assert applied_at, "the command was never applied"
    assert not seen["done_while_paused"], f"applied while paused: {applied_at}"
    assert applied_at[0][1] == "running"
