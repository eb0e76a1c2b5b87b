"""Hooks: priorities, registration order, dispatch, ``hooks_info``, default hooks,
runtime info in the hub, per-call timing and cleanup after a failure.

MMEngine is the reference for the order and layout (``Runner.register_hook``,
``register_default_hooks``, ``get_hooks_info`` and ``RuntimeInfoHook``).
"""

from __future__ import annotations

import math
import random

import pytest

from cockpit import (
    CheckpointHook,
    ConfigError,
    DistSamplerSeedHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    MessageHub,
    ParamSchedulerHook,
    Priority,
    RuntimeInfoHook,
    current_hub,
)
from cockpit import events as ev
from cockpit.hooks.base import STAGES
from cockpit.hooks.dispatch import HookDispatcher
from cockpit.priority import get_priority, priority_name

# tiny_cfg: 2 epochs x 8 iterations (64 samples, batch 8), validation after each
# epoch over 2 batches (32 samples, batch 16), SGD with lr 0.1.
EPOCHS, ITERS_PER_EPOCH, VAL_BATCHES = 2, 8, 2
MAX_ITERS = EPOCHS * ITERS_PER_EPOCH
QUIET_LOGGER = dict(type="LoggerHook", interval=4, backends=("json",))

DEFAULT_ORDER = [
    ("RuntimeInfoHook", 10),
    ("IterTimerHook", 50),
    ("DistSamplerSeedHook", 50),
    ("LoggerHook", 60),
    ("ParamSchedulerHook", 70),
    ("CheckpointHook", 90),
]


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
def make_runner(make_runner):
    """MMEngine's hooks alone: these tests compare hook orders with MMEngine's, which has no health guard
    (Cockpit's own hook, on by default; tests/hooks/test_health_guard.py covers it)."""
    return lambda **overrides: make_runner(**{"health_guard": False, **overrides})

def make_hook_class(name: str, stages: tuple[str, ...] = ("before_run",), priority=None,
                    log: list | None = None) -> type[Hook]:
    """A Hook subclass called ``name`` overriding ``stages``; each call appends ``(stage, name)`` to ``log``."""
    namespace: dict = {}
    for stage in stages:
        def method(self, runner, *args, _stage=stage, **kwargs):
            if log is not None:
                log.append((_stage, name))
        namespace[stage] = method
    if priority is not None:
        namespace["priority"] = priority
    return type(name, (Hook,), namespace)


def order(dispatcher: HookDispatcher) -> list[str]:
    return [type(h).__name__ for h in dispatcher.hooks]


def names(runner) -> list[str]:
    return [type(h).__name__ for h in runner.hooks]


def stage_entries(table: tuple, stage: str) -> list[str]:
    """Hook names of ``stage`` in a hooks table (``()`` when no hook overrides it)."""
    return [hook for name, entries in table if name == stage for _, _, hook in entries]


def find_hook(runner, cls: type) -> Hook:
    found = [h for h in runner.hooks if type(h) is cls]
    assert len(found) == 1, f"expected one {cls.__name__}, found {len(found)}"
    return found[0]


def mmengine_hooks_info(hooks: list[Hook]) -> str:
    """MMEngine's ``Runner.get_hooks_info``, verbatim but for the stage list."""
    stage_hook_map: dict[str, list] = {stage: [] for stage in STAGES}
    for hook in hooks:
        try:
            priority = Priority(hook.priority).name
        except ValueError:
            priority = hook.priority
        classname = hook.__class__.__name__
        hook_info = f"({priority:<12}) {classname:<35}"
        for trigger_stage in hook.get_triggered_stages():
            stage_hook_map[trigger_stage].append(hook_info)
    stage_hook_infos = []
    for stage in STAGES:
        hook_infos = stage_hook_map[stage]
        if len(hook_infos) > 0:
            info = f"{stage}:\n"
            info += "\n".join(hook_infos)
            info += "\n -------------------- "
            stage_hook_infos.append(info)
    return "\n".join(stage_hook_infos)


# --- Priority ---------------------------------------------------------------------------

MMENGINE_PRIORITIES = {
    "HIGHEST": 0, "VERY_HIGH": 10, "HIGH": 30, "ABOVE_NORMAL": 40, "NORMAL": 50,
    "BELOW_NORMAL": 60, "LOW": 70, "VERY_LOW": 90, "LOWEST": 100,
}


def test_priority_enum_matches_mmengine():
    assert {p.name: int(p) for p in Priority} == MMENGINE_PRIORITIES


@pytest.mark.parametrize(("name", "value"), sorted(MMENGINE_PRIORITIES.items()))
def test_get_priority_accepts_names_members_and_any_case(name, value):
    assert get_priority(name) == value
    assert get_priority(Priority[name]) == value
    assert get_priority(name.lower()) == value
    assert get_priority(name.title()) == value
    assert type(get_priority(Priority[name])) is int


@pytest.mark.parametrize("value", [0, 1, 29, 42, 50, 99, 100])
def test_get_priority_accepts_ints_0_to_100(value):
    assert get_priority(value) == value


@pytest.mark.parametrize("bad", [101, -1, 1000])
def test_get_priority_rejects_out_of_range_ints(bad):
    with pytest.raises(ValueError, match="between 0 and 100"):
        get_priority(bad)


def test_get_priority_rejects_unknown_name_listing_the_valid_ones():
    with pytest.raises(ValueError, match="BOGUS") as info:
        get_priority("BOGUS")
    message = str(info.value)
    for name in MMENGINE_PRIORITIES:
        assert name in message


@pytest.mark.parametrize("bad", [True, False, 50.0, None, [50]])
def test_get_priority_rejects_bools_and_other_types(bad):
    with pytest.raises(TypeError):
        get_priority(bad)


def test_priority_name_gives_the_name_or_the_number():
    assert priority_name(30) == "HIGH"
    assert priority_name("very_low") == "VERY_LOW"
    assert priority_name(Priority.LOWEST) == "LOWEST"
    assert priority_name(42) == "42"
    assert priority_name(0) == "HIGHEST"


# --- registration order -----------------------------------------------------------------

def test_mixed_priorities_sort_and_ties_keep_registration_order():
    dispatcher = HookDispatcher(MessageHub())
    log: list = []
    plan = [("A", 50), ("B", 10), ("C", 90), ("D", "NORMAL"), ("E", Priority.VERY_HIGH),
            ("F", "highest"), ("G", 100), ("H", 50), ("I", 0)]
    for name, priority in plan:
        dispatcher.register(make_hook_class(name, ("before_run", "after_run"), priority, log)())
    expected = ["F", "I", "B", "E", "A", "D", "H", "C", "G"]
    assert order(dispatcher) == expected
    dispatcher.call(None, "before_run")
    dispatcher.call(None, "after_run")
    assert log == [("before_run", n) for n in expected] + [("after_run", n) for n in expected]


def test_registration_is_a_stable_sort_like_mmengine():
    """MMEngine inserts a hook after every hook whose priority value is <= its own."""
    rng = random.Random(0)
    dispatcher = HookDispatcher(MessageHub())
    registered = []
    for index in range(60):
        priority = rng.choice([0, 10, 30, 42, 50, 50, 60, 100, "NORMAL", "low"])
        dispatcher.register(make_hook_class(f"H{index}", priority=priority)())
        registered.append((f"H{index}", get_priority(priority)))
    expected = [name for name, _ in sorted(registered, key=lambda item: item[1])]
    assert order(dispatcher) == expected


def test_per_stage_order_contains_only_hooks_that_override_the_stage():
    log: list = []
    dispatcher = HookDispatcher(MessageHub())
    dispatcher.register(make_hook_class("Late", ("before_run", "after_train_iter"), "LOW", log)())
    dispatcher.register(make_hook_class("Early", ("after_train_iter",), "HIGH", log)())
    dispatcher.register(make_hook_class("Tie", ("before_run", "after_train_iter"), "LOW", log)())
    dispatcher.call(None, "before_run")
    dispatcher.call(None, "after_train_iter", batch_idx=0, data_batch=None, outputs=None)
    dispatcher.call(None, "after_run")  # nobody overrides it: nothing is called
    assert log == [("before_run", "Late"), ("before_run", "Tie"),
                   ("after_train_iter", "Early"), ("after_train_iter", "Late"), ("after_train_iter", "Tie")]


def test_priority_argument_overrides_the_class_attribute():
    dispatcher = HookDispatcher(MessageHub())
    dispatcher.register(make_hook_class("Normal")())
    dispatcher.register(make_hook_class("ClassLow", priority="LOW")())
    dispatcher.register(make_hook_class("ArgFirst", priority="LOWEST")(), priority="HIGHEST")
    dispatcher.register(make_hook_class("ArgInt", priority=0)(), priority=60)
    assert order(dispatcher) == ["ArgFirst", "Normal", "ArgInt", "ClassLow"]
    assert dispatcher.hooks[0].priority == "HIGHEST"
    assert dispatcher.hooks[2].priority == 60


def test_class_attribute_priority_places_the_hook(make_runner):
    runner = make_runner()
    runner.register_hook(make_hook_class("ClassVeryLow", priority="VERY_LOW")())
    runner.register_hook(make_hook_class("ClassDefault")())  # Hook.priority is NORMAL
    assert names(runner) == ["RuntimeInfoHook", "IterTimerHook", "DistSamplerSeedHook", "ClassDefault",
                             "LoggerHook", "ParamSchedulerHook", "CheckpointHook", "ClassVeryLow"]


def test_runner_register_hook_priority_from_dict_key_and_argument(make_runner):
    runner = make_runner()
    dict_hook = make_hook_class("FromDict", priority="LOWEST")
    arg_hook = make_hook_class("FromArg", priority="LOWEST")
    runner.register_hook(dict(type=dict_hook, priority="VERY_HIGH"))
    # The argument wins over the dict's key, which wins over the class attribute.
    runner.register_hook(dict(type=arg_hook, priority="HIGHEST"), priority=65)
    assert names(runner) == ["RuntimeInfoHook", "FromDict", "IterTimerHook", "DistSamplerSeedHook",
                             "LoggerHook", "FromArg", "ParamSchedulerHook", "CheckpointHook"]
    assert get_priority(find_hook(runner, dict_hook).priority) == 10
    assert get_priority(find_hook(runner, arg_hook).priority) == 65


def test_register_hook_publishes_the_new_table(make_runner):
    runner = make_runner()
    hub = runner.message_hub
    with hub.subscribe() as sub:
        runner.register_hook(make_hook_class("Published", ("after_run",), 42)())
        changes = [e for e in sub.poll() if isinstance(e, ev.HooksChanged)]
    assert len(changes) == 1
    assert changes[0].table == hub.hooks_table == runner.dispatcher.table()
    assert dict(hub.hooks_table)["after_run"] == (("42", 42, "Published"), ("BELOW_NORMAL", 60, "LoggerHook"))


# --- stages a hook overrides ------------------------------------------------------------

class StageRecorder(Hook):
    """Overrides three stages only."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def before_train_epoch(self, runner) -> None:
        self.calls.append(("before_train_epoch", runner.epoch))

    def after_val_epoch(self, runner, metrics=None) -> None:
        assert metrics is not None and "accuracy/top1" in metrics
        self.calls.append(("after_val_epoch", runner.epoch))

    def after_train(self, runner) -> None:
        self.calls.append(("after_train", runner.epoch))


class StageRecorderChild(StageRecorder):
    """Inherits the three overrides and adds one."""

    def after_run(self, runner) -> None:
        self.calls.append(("after_run", runner.epoch))


def test_get_triggered_stages_lists_overrides_in_stage_order():
    assert StageRecorder().get_triggered_stages() == ["before_train_epoch", "after_val_epoch", "after_train"]
    assert StageRecorderChild().get_triggered_stages() == [
        "before_train_epoch", "after_val_epoch", "after_train", "after_run"]
    assert Hook().get_triggered_stages() == []
    assert STAGES[0] == "before_run" and STAGES[-1] == "after_run" and len(set(STAGES)) == len(STAGES) == 22


def test_hook_is_called_only_at_the_stages_it_overrides(make_runner):
    runner = make_runner()
    hook = StageRecorder()
    runner.register_hook(hook)
    runner.train()
    assert hook.calls == [("before_train_epoch", 0), ("after_val_epoch", 1),
                          ("before_train_epoch", 1), ("after_val_epoch", 2), ("after_train", 2)]
    overridden = {"before_train_epoch", "after_val_epoch", "after_train"}
    for table in (runner.dispatcher.table(), runner.message_hub.hooks_table):
        for stage in STAGES:
            assert ("StageRecorder" in stage_entries(table, stage)) == (stage in overridden), stage
    timed = {stage for stage, hook_name in runner.message_hub.hook_timings() if hook_name == "StageRecorder"}
    assert timed == overridden


def test_hooks_table_skips_stages_no_hook_overrides():
    dispatcher = HookDispatcher(MessageHub())
    assert dispatcher.table() == ()
    assert dispatcher.info() == ""
    dispatcher.register(make_hook_class("Only", ("after_test",), 42)())
    assert dispatcher.table() == (("after_test", (("42", 42, "Only"),)),)


# --- hooks_info ------------------------------------------------------------------------

def test_hooks_info_exact_layout():
    dispatcher = HookDispatcher(MessageHub())
    dispatcher.register(make_hook_class("Gamma", ("after_train_iter",), Priority.LOWEST)())
    dispatcher.register(make_hook_class("Beta", ("after_train_iter", "after_run"), 42)())
    dispatcher.register(make_hook_class("Alpha", ("before_run", "after_train_iter"), "HIGH")())
    dispatcher.register(make_hook_class("Delta", ("before_run",), 30)())  # 30 is HIGH: printed by name
    expected = "\n".join([
        "before_run:",
        "(HIGH        ) Alpha" + " " * 30,
        "(HIGH        ) Delta" + " " * 30,
        " -------------------- ",
        "after_train_iter:",
        "(HIGH        ) Alpha" + " " * 30,
        "(42          ) Beta" + " " * 31,
        "(LOWEST      ) Gamma" + " " * 30,
        " -------------------- ",
        "after_run:",
        "(42          ) Beta" + " " * 31,
        " -------------------- ",
    ])
    assert dispatcher.info() == expected


def test_runner_hooks_info_matches_mmengine_for_defaults_and_custom_hooks(make_runner):
    runner = make_runner()
    runner.register_hook(make_hook_class("IntPriority", ("before_train_iter", "after_val"), 42)())
    runner.register_hook(make_hook_class("EnumPriority", ("before_train_iter",), Priority.ABOVE_NORMAL)())
    text = runner.hooks_info()
    assert text == mmengine_hooks_info(runner.hooks)
    assert runner.get_hooks_info() == text
    blocks = text.split("\n -------------------- ")
    assert blocks[0].splitlines() == [
        "before_run:",
        "(VERY_HIGH   ) RuntimeInfoHook                    ",
        "(BELOW_NORMAL) LoggerHook                         ",
    ]
    before_train_iter = next(b for b in blocks if b.lstrip("\n").startswith("before_train_iter:"))
    assert before_train_iter.strip("\n").splitlines() == [
        "before_train_iter:",
        "(VERY_HIGH   ) RuntimeInfoHook                    ",
        "(ABOVE_NORMAL) EnumPriority                       ",
        "(42          ) IntPriority                        ",
        "(NORMAL      ) IterTimerHook                      ",
    ]
    assert text.endswith("after_run:\n(BELOW_NORMAL) LoggerHook                         \n -------------------- ")


def test_hooks_info_is_written_to_the_run_log(make_runner):
    runner = make_runner(default_hooks=dict(logger=QUIET_LOGGER, checkpoint=None))
    runner.val()
    log_text = (runner.log_dir / f"{runner.timestamp}.log").read_text()
    assert runner.hooks_info() in log_text


# --- default hooks ---------------------------------------------------------------------

def test_six_default_hooks_with_mmengine_priorities(make_runner):
    runner = make_runner(default_hooks=None)  # no default_hooks key at all
    assert [(type(h).__name__, get_priority(h.priority)) for h in runner.hooks] == DEFAULT_ORDER
    classes = [RuntimeInfoHook, IterTimerHook, DistSamplerSeedHook, LoggerHook, ParamSchedulerHook, CheckpointHook]
    assert [type(h) for h in runner.hooks] == classes
    assert find_hook(runner, CheckpointHook).interval == 1
    assert find_hook(runner, LoggerHook).interval == 10


def test_default_hook_set_to_none_is_removed(make_runner):
    runner = make_runner(default_hooks=dict(timer=None, logger=QUIET_LOGGER))
    assert names(runner) == ["RuntimeInfoHook", "DistSamplerSeedHook", "LoggerHook",
                             "ParamSchedulerHook", "CheckpointHook"]
    runner.train()  # the logger copes without timings
    assert "train/time" not in runner.message_hub.log_scalars
    assert "train/loss" in runner.message_hub.log_scalars
    assert runner.message_hub.status == "finished"


def test_default_hook_override_replaces_it(make_runner):
    runner = make_runner(default_hooks=dict(logger=dict(type="LoggerHook", interval=2)))
    assert [(type(h).__name__, get_priority(h.priority)) for h in runner.hooks] == DEFAULT_ORDER
    assert find_hook(runner, LoggerHook).interval == 2


def test_default_hook_override_with_an_instance(make_runner):
    runner = make_runner(default_hooks=dict(logger=LoggerHook(interval=3, backends=("json",))))
    assert [type(h).__name__ for h in runner.hooks] == [name for name, _ in DEFAULT_ORDER]
    assert find_hook(runner, LoggerHook).interval == 3


def test_default_hook_dict_priority_is_honoured(make_runner):
    runner = make_runner(default_hooks=dict(logger=dict(QUIET_LOGGER, priority="HIGHEST")))
    assert names(runner)[0] == "LoggerHook"
    assert get_priority(find_hook(runner, LoggerHook).priority) == 0


def test_custom_hooks_as_dicts_and_instances(make_runner):
    first = make_hook_class("CustomFirst", priority="LOWEST")
    normal = make_hook_class("CustomNormal")
    last = make_hook_class("CustomLast", priority=95)
    runner = make_runner(custom_hooks=[dict(type=first, priority="HIGHEST"), normal(), dict(type=last)])
    assert names(runner) == ["CustomFirst", "RuntimeInfoHook", "IterTimerHook", "DistSamplerSeedHook",
                             "CustomNormal", "LoggerHook", "ParamSchedulerHook", "CheckpointHook", "CustomLast"]
    assert get_priority(find_hook(runner, first).priority) == 0


def test_custom_hook_dict_with_string_type_builds_a_builtin(make_runner):
    runner = make_runner(custom_hooks=[dict(type="IterTimerHook", priority="LOWEST")])
    timers = [h for h in runner.hooks if isinstance(h, IterTimerHook)]
    assert len(timers) == 2 and runner.hooks[-1] is timers[1]
    assert runner.dispatcher.names[-1] == "IterTimerHook#2"


class NotAHook:
    def before_run(self, runner) -> None:
        pass


def test_non_hook_custom_instance_is_a_type_error(make_runner):
    with pytest.raises(TypeError, match="Hook"):
        make_runner(custom_hooks=[NotAHook()])


def test_non_hook_custom_dict_is_a_config_error(make_runner):
    with pytest.raises(ConfigError, match="NotAHook is not a Hook") as info:
        make_runner(custom_hooks=[dict(type=NotAHook)])
    assert info.value.key == "custom_hooks[0]"


def test_non_hook_default_hook_is_an_error(make_runner):
    with pytest.raises(TypeError, match="Hook"):
        make_runner(default_hooks=dict(timer="IterTimerHook"))
    with pytest.raises(ConfigError, match="not a Hook") as info:
        make_runner(default_hooks=dict(timer=dict(type=NotAHook)))
    assert info.value.key == "default_hooks.timer"


def test_register_hook_rejects_non_hooks_and_bad_priorities(make_runner):
    runner = make_runner()
    before = list(runner.hooks)
    with pytest.raises(TypeError, match="Hook"):
        runner.register_hook(42)
    with pytest.raises(TypeError, match="Hook"):
        runner.register_hook(NotAHook())
    with pytest.raises(ValueError, match="BOGUS"):
        runner.register_hook(make_hook_class("Bad")(), priority="BOGUS")
    with pytest.raises(ValueError, match="between 0 and 100"):
        runner.register_hook(dict(type=make_hook_class("Bad2"), priority=101))
    with pytest.raises(TypeError):
        runner.register_hook(make_hook_class("Bad3")(), priority=True)
    assert runner.hooks == before


# --- runtime info in the hub -----------------------------------------------------------

INFO_KEYS = ("epoch", "iter", "max_epochs", "max_iters", "loop_stage")


class InfoRecorder(Hook):
    """Records the hub's runtime info at the stages it overrides (after every default hook)."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.etas: list[float] = []

    def _record(self, runner, stage: str) -> None:
        hub = runner.message_hub
        self.seen.append((stage, {key: hub.get_info(key) for key in INFO_KEYS}))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._record(runner, "before_train_iter")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._record(runner, "after_train_iter")
        self.etas.append(runner.message_hub.get_info("eta"))

    def before_val(self, runner) -> None:
        self._record(runner, "before_val")

    def after_val(self, runner) -> None:
        self._record(runner, "after_val")
        self.seen[-1][1]["top1_count"] = runner.message_hub.get_scalar("val/accuracy/top1").count


@pytest.fixture
def trained(make_runner):
    """A finished tiny training run with an InfoRecorder."""
    runner = make_runner()
    recorder = InfoRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def test_runtime_info_at_train_iterations(trained):
    _, recorder = trained
    for stage in ("before_train_iter", "after_train_iter"):
        seen = [info for name, info in recorder.seen if name == stage]
        assert len(seen) == MAX_ITERS
        for k, info in enumerate(seen):
            assert info == {"epoch": k // ITERS_PER_EPOCH, "iter": k, "max_epochs": EPOCHS,
                            "max_iters": MAX_ITERS, "loop_stage": "train"}, (stage, k)


def test_loop_stage_is_val_inside_validation_and_train_after(trained):
    runner, recorder = trained
    around_val = [(name, info) for name, info in recorder.seen if name in ("before_val", "after_val")]
    assert [name for name, _ in around_val] == ["before_val", "after_val"] * EPOCHS
    for index, (name, info) in enumerate(around_val):
        epoch = index // 2
        assert info["loop_stage"] == ("val" if name == "before_val" else "train")
        assert info["max_epochs"] == EPOCHS and info["max_iters"] == MAX_ITERS
        # As in MMEngine, epoch and iter keep the values of the last train iteration.
        assert info["epoch"] == epoch
        assert info["iter"] == (epoch + 1) * ITERS_PER_EPOCH - 1
    assert [info["top1_count"] for name, info in around_val if name == "after_val"] == [1, 2]
    # The train loop is over: the stage is gone (MMEngine pops it in after_train).
    assert runner.message_hub.get_info("loop_stage") is None


def test_standalone_validation_pops_the_loop_stage(make_runner):
    runner = make_runner()
    recorder = InfoRecorder()
    runner.register_hook(recorder)
    metrics = runner.val()
    assert [(name, info["loop_stage"]) for name, info in recorder.seen] == [("before_val", "val"),
                                                                           ("after_val", None)]
    assert runner.message_hub.get_info("loop_stage") is None
    assert runner.message_hub.get_scalar("val/accuracy/top1").current() == pytest.approx(metrics["accuracy/top1"])


def test_train_scalars_one_value_per_iteration(trained):
    runner, _ = trained
    hub = runner.message_hub
    lr, loss = hub.get_scalar("train/lr"), hub.get_scalar("train/loss")
    assert lr.count == loss.count == MAX_ITERS
    steps, values, _, _ = lr.series()
    assert steps == list(range(MAX_ITERS))
    assert values == [pytest.approx(0.1)] * MAX_ITERS
    steps, values, _, _ = loss.series()
    assert steps == list(range(MAX_ITERS))
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert all(type(v) is float for v in values)


def test_val_metric_scalar_after_each_validation(trained):
    runner, _ = trained
    top1 = runner.message_hub.get_scalar("val/accuracy/top1")
    assert top1.count == EPOCHS
    steps, values, _, _ = top1.series()
    # Plotted at the number of training iterations done when measured.
    assert steps == [ITERS_PER_EPOCH, MAX_ITERS]
    assert all(0.0 <= v <= 1.0 for v in values)


def test_iter_timer_scalars_and_eta(trained):
    runner, recorder = trained
    hub = runner.message_hub
    times = hub.get_scalar("train/time")
    data_times = hub.get_scalar("train/data_time")
    assert times.count == data_times.count == MAX_ITERS
    assert hub.get_scalar("val/time").count == hub.get_scalar("val/data_time").count == EPOCHS * VAL_BATCHES
    _, time_values, _, _ = times.series()
    _, data_values, _, _ = data_times.series()
    assert all(t > 0 for t in time_values)
    assert all(0 <= d <= t for d, t in zip(data_values, time_values, strict=True))
    # eta = mean iteration time so far x iterations left. It is published after the first
    # iteration, then at most four times a second, and after the last one: each value seen
    # is the formula at the latest iteration where it was published.
    assert len(recorder.etas) == MAX_ITERS
    expected = [sum(time_values[: k + 1]) / (k + 1) * (MAX_ITERS - k - 1) for k in range(MAX_ITERS)]
    assert recorder.etas[0] == pytest.approx(expected[0]) and recorder.etas[0] > 0
    for k, eta in enumerate(recorder.etas):
        assert any(eta == pytest.approx(expected[j]) for j in range(k + 1)), k
    assert recorder.etas[-1] == 0
    assert hub.get_info("iters_per_sec") > 0


def test_logged_values_on_the_cpu_keep_their_precision(make_runner):
    """On the CPU each logged tensor is read as it is (MMEngine's hub reads each with ``item()``): a
    float64 value logged beside the float32 loss keeps its 64 bits, and each value keeps its step."""
    import torch
    from toys import ToyNet

    class WithAccuracy(ToyNet):
        def forward(self, inputs, data_samples=None, mode="tensor"):
            out = super().forward(inputs, data_samples, mode)
            if mode == "loss":
                out = {**out, "acc": torch.tensor(0.1, dtype=torch.float64)}
            return out

    runner = make_runner(model=dict(type=WithAccuracy), default_hooks=dict(checkpoint=None, logger=None))
    runner.train()
    accuracy = runner.message_hub.get_scalar("train/acc")
    assert accuracy.series()[1] == [0.1] * MAX_ITERS
    assert accuracy.series()[0] == runner.message_hub.get_scalar("train/loss").series()[0] == list(range(MAX_ITERS))


def test_runtime_info_before_run_metadata(trained):
    runner, _ = trained
    hub = runner.message_hub
    assert hub.get_info("experiment_name") == runner.experiment_name
    assert hub.get_info("seed") == runner.seed == 0
    assert hub.get_info("work_dir") == runner.work_dir


# --- timing and events -----------------------------------------------------------------

def test_each_hook_call_is_timed_and_reported(make_runner, monkeypatch):
    import cockpit.hooks.dispatch as dispatch

    monkeypatch.setattr(dispatch, "SHOW_INTERVAL", 3600.0)  # however slow the machine, the batches are batches
    runner = make_runner()
    hub = runner.message_hub
    with hub.subscribe() as sub:
        runner.train()
        events = sub.poll()
    timings = hub.hook_timings()
    calls, seconds = timings[("after_train_iter", "RuntimeInfoHook")]
    assert calls == MAX_ITERS and seconds >= 0
    assert timings[("before_train_iter", "IterTimerHook")][0] == MAX_ITERS
    assert timings[("before_run", "LoggerHook")][0] == 1
    assert timings[("after_run", "LoggerHook")][0] == 1
    assert timings[("before_val", "RuntimeInfoHook")][0] == EPOCHS
    assert timings[("after_val_iter", "IterTimerHook")][0] == EPOCHS * VAL_BATCHES
    assert timings[("after_train_epoch", "CheckpointHook")][0] == EPOCHS
    # Only hooks that override a stage are called (and timed) there.
    assert ("before_run", "IterTimerHook") not in timings
    assert all(stage in dict(hub.hooks_table) for stage, _ in timings)

    # The subscription saw the whole run, without gaps.
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[-1] == hub.seq
    stages = [e.stage for e in events if isinstance(e, ev.StageEntered)]
    assert stages[0] == "before_run" and stages[-1] == "after_run"
    # The stages that run every iteration are sent as they start at most every SHOW_INTERVAL (here
    # once), every other stage each time it starts.
    assert stages.count("before_train_iter") + stages.count("after_train_iter") == 1
    assert stages.count("before_val") == stages.count("after_train_epoch") == EPOCHS

    called = [(e.stage, hook, seconds) for e in events if isinstance(e, ev.StageTimed) for hook, seconds in e.calls]
    assert sum(1 for stage, hook, _ in called if (stage, hook) == ("after_train_iter", "RuntimeInfoHook")) == MAX_ITERS
    assert len(called) == sum(count for count, _ in timings.values())
    # Each StageTimed lists whole runs of its stage: the stage's hooks in order, once per run (the
    # per-iteration stages' runs since the last batch). A stage that is not per-iteration is timed
    # after it started and before anything else starts, but the stages it holds (CheckpointHook's
    # after_train_epoch saves: before_save_checkpoint).
    table = dict(hub.hooks_table)
    open_stages: list[str] = []
    for event in events:
        if isinstance(event, ev.StageEntered) and not event.stage.endswith("_iter"):
            open_stages.append(event.stage)
        elif isinstance(event, ev.StageTimed):
            hooks = [hook for hook, _ in event.calls]
            order = [hook for _, _, hook in table.get(event.stage, ())]
            assert hooks and len(hooks) % len(order) == 0 and hooks == order * (len(hooks) // len(order)), event
            assert all(seconds >= 0 for _, seconds in event.calls)
            if not event.stage.endswith("_iter"):
                assert open_stages.pop() == event.stage, event
    assert all(not any(table.get(stage, ())) for stage in open_stages), open_stages  # no hook there: no StageTimed
    # Batched: published before the next stage of its own (here each epoch's end), or when a batch is due.
    batches = [e for e in events if isinstance(e, ev.StageTimed) and e.stage == "after_train_iter"]
    assert [len(e.calls) // len(table["after_train_iter"]) for e in batches] == [ITERS_PER_EPOCH] * EPOCHS
    statuses = [e.status for e in events if isinstance(e, ev.StatusChanged)]
    # Running, with a "validating" and a "saving" spell per epoch (each back to running), then finished.
    assert statuses[0] == "running" and statuses[-1] == "finished"
    assert statuses.count("validating") == EPOCHS
    assert statuses.count("saving") == EPOCHS
    assert all(after == "running" for before, after in zip(statuses, statuses[1:], strict=False)
               if before in ("validating", "saving"))


@pytest.mark.parametrize("listening", [False, True])
def test_a_stage_reads_the_clock_once_per_hook(monkeypatch, listening):
    """Each hook's time runs from the clock read that ended the previous hook's to the one after it:
    a stage of n hooks reads the clock n + 1 times (not twice per hook), and the times add up."""
    import cockpit.hooks.dispatch as dispatch

    readings = iter([10.0, 11.0, 13.0, 16.0])
    reads = []

    def clock() -> float:
        reads.append(1)
        return next(readings)

    monkeypatch.setattr(dispatch, "perf_counter", clock)
    hub = MessageHub()
    dispatcher = HookDispatcher(hub)
    for name in ("First", "Second", "Third"):
        dispatcher.register(make_hook_class(name, ("after_train_iter",))())
    with hub.subscribe() as sub:
        if not listening:
            sub.close()
        dispatcher.call(None, "after_train_iter", batch_idx=0)
        events = [e for e in sub.poll() if isinstance(e, ev.StageTimed)]
    assert len(reads) == 4
    assert hub.hook_timings() == {("after_train_iter", "First"): (1, 1.0), ("after_train_iter", "Second"): (1, 2.0),
                                  ("after_train_iter", "Third"): (1, 3.0)}
    assert [e.calls for e in events] == ([(("First", 1.0), ("Second", 2.0), ("Third", 3.0))] if listening else [])


def test_a_batch_of_iteration_calls_is_counted_once_published_and_none_is_lost_when_the_view_leaves(monkeypatch):
    """While a view listens, the per-iteration stages' calls wait for their batch: neither in the
    counters (a snapshot) nor in an event until then, so a viewer counts each call exactly once. A view
    that leaves leaves none of them behind: the next call puts them in the counters."""
    import cockpit.hooks.dispatch as dispatch

    monkeypatch.setattr(dispatch, "SHOW_INTERVAL", 3600.0)
    hub = MessageHub()
    dispatcher = HookDispatcher(hub)
    dispatcher.register(make_hook_class("Timed", ("after_train_iter", "after_train_epoch"))())
    sub = hub.subscribe()
    dispatcher.call(None, "after_train_epoch")  # a stage of its own: published at once
    for _ in range(3):
        dispatcher.call(None, "after_train_iter", batch_idx=0)
    assert hub.hook_timings().get(("after_train_iter", "Timed")) is None
    assert [e.stage for e in sub.poll() if isinstance(e, ev.StageTimed)] == ["after_train_epoch"]
    sub.close()
    dispatcher.call(None, "after_train_iter", batch_idx=0)
    assert hub.hook_timings()[("after_train_iter", "Timed")][0] == 4


def test_two_instances_of_one_hook_class_are_timed_apart(make_runner):
    cls = make_hook_class("Twice", ("after_train_iter",))
    runner = make_runner(train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    runner.register_hook(cls())
    runner.register_hook(cls())
    runner.train()
    timings = runner.message_hub.hook_timings()
    assert timings[("after_train_iter", "Twice")][0] == ITERS_PER_EPOCH
    assert timings[("after_train_iter", "Twice#2")][0] == ITERS_PER_EPOCH


# --- failures --------------------------------------------------------------------------

class Boom(Hook):
    """Raises in after_train_iter at iteration ``at``, after noting LoggerHook's open writers."""

    def __init__(self, at: int = 2) -> None:
        self.at = at
        self.writers: list = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == self.at:
            logger = next(h for h in runner.hooks if isinstance(h, LoggerHook))
            self.writers = list(logger.writers)
            raise RuntimeError(f"boom at iter {runner.iter}")


class AfterRunCounter(Hook):
    priority = "HIGHEST"

    def __init__(self) -> None:
        self.calls = 0
        self.status_seen: list[str] = []

    def after_run(self, runner) -> None:
        self.calls += 1
        self.status_seen.append(runner.message_hub.status)


def test_after_run_runs_when_training_raises(make_runner):
    runner = make_runner()
    boom, counter = Boom(), AfterRunCounter()
    runner.register_hook(boom)
    runner.register_hook(counter)
    hub = runner.message_hub
    with hub.subscribe() as sub, pytest.raises(RuntimeError, match="boom at iter 2"):
        runner.train()
    events = sub.poll()
    assert hub.status == "failed"
    assert "boom at iter 2" in hub.snapshot()["status_detail"]
    assert counter.calls == 1
    assert counter.status_seen == ["failed"]
    logger = find_hook(runner, LoggerHook)
    assert boom.writers, "LoggerHook had no writers open during training"
    assert all(w._file.closed for w in boom.writers)
    assert logger.writers == []
    stages = [e.stage for e in events if isinstance(e, ev.StageEntered)]
    assert stages[-1] == "after_run"
    assert stages.count("after_train") == 0
    assert [e.status for e in events if isinstance(e, ev.StatusChanged)] == ["running", "failed"]
    with pytest.raises(RuntimeError):
        current_hub()


class BrokenAfterRun(Hook):
    priority = "HIGHEST"  # runs before LoggerHook's after_run

    def after_run(self, runner) -> None:
        raise ValueError("after_run is broken")


def test_failing_cleanup_hook_does_not_hide_the_error_or_skip_other_cleanup(make_runner):
    """Bug: one after_run hook raising during cleanup stops the other hooks' after_run."""
    runner = make_runner()
    boom = Boom()
    runner.register_hook(boom)
    runner.register_hook(BrokenAfterRun())
    with pytest.raises(RuntimeError, match="boom"):
        runner.train()
    assert runner.message_hub.status == "failed"
    # Hook.after_run: "Once, after all loops ran (also after a failure)" - for every hook.
    assert all(w._file.closed for w in boom.writers)


def test_after_run_raising_after_a_good_run_marks_the_run_failed(make_runner):
    """Bug: an error in after_run after a successful loop leaves the status at 'running'."""
    runner = make_runner(train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    runner.register_hook(BrokenAfterRun())
    with pytest.raises(ValueError, match="after_run is broken"):
        runner.train()
    assert runner.message_hub.status == "failed"
