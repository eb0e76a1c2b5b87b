"""Config to objects: the forms of ``type=``, and errors naming the file, the key path and the fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support import ToyData, ToyNet

import cockpit
from cockpit import cli
from cockpit.build import BUILTINS, Builder
from cockpit.config import Config
from cockpit.errors import ConfigError
from cockpit.runner import Runner

# A complete, self-contained config file: the model and data classes live in the file
# itself (module-level classes are not config keys). {work_dir} is filled in per test.
PRELUDE = '''
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cockpit import BaseModel


class Data(Dataset):
    def __init__(self, size=16):
        self.x = torch.randn(size, 4, generator=torch.Generator().manual_seed(0))
        self.y = torch.arange(size) % 3

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Net(BaseModel):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, data_samples)}
        if mode == "predict":
            return logits, data_samples
        return logits


'''

FULL = '''
work_dir = {work_dir!r}
model = dict(type=Net, width=8)
train_dataloader = dict(dataset=dict(type=Data, size=16), sampler=dict(type='DefaultSampler', shuffle=True),
                        batch_size=4)
val_dataloader = dict(dataset=dict(type=Data, size=8), batch_size=4)
val_evaluator = dict(type='Accuracy')
val_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=2, backends=('json',)))
randomness = dict(seed=0)
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def write_cfg(tmp_path: Path, extra: str = "", name: str = "cfg.py") -> Path:
    """The full config (PRELUDE + FULL) followed by ``extra`` (later assignments win)."""
    body = PRELUDE + FULL.format(work_dir=str(tmp_path / "work")) + textwrap.dedent(extra)
    return write(tmp_path / name, body)


def runner_from(path: Path, **overrides) -> Runner:
    return Runner.from_cfg(Config.fromfile(path), log_to_console=False, **overrides)


def config_error(path: Path, build=lambda runner: None, options=None) -> ConfigError:
    """The ConfigError raised while loading ``path``, building its runner or by ``build(runner)``."""
    with pytest.raises(ConfigError) as info:
        runner = Runner.from_cfg(Config.fromfile(path, options), log_to_console=False)
        build(runner)
    return info.value


def assert_names_file_key_fix(error: ConfigError, path: Path, key: str) -> str:
    """The message names the file, the key path and a fix; returns the message."""
    message = str(error)
    assert str(path.resolve()) in message, message
    assert key in message, message
    assert "\n  fix: " in message, message
    assert error.key == key
    return message


@pytest.fixture
def fresh_module(request):
    """``fresh_module(name)`` reserves a module name and removes it from sys.modules afterwards."""

    def reserve(name: str) -> str:
        assert name not in sys.modules
        request.addfinalizer(lambda: sys.modules.pop(name, None))
        return name

    return reserve


# --- the forms of type= ------------------------------------------------------------------
def test_type_as_a_class_object():
    model = Builder().build(dict(type=ToyNet, hidden=5), "model")
    assert isinstance(model, ToyNet)
    assert model.net[0].out_features == 5


def test_type_as_a_function():
    def make(size, scale=1):
        return [scale] * size

    assert Builder().build(dict(type=make, size=2, scale=3), "thing") == [3, 3]


def test_build_passes_defaults_that_the_config_can_override():
    built = Builder().build(dict(type=dict, b=2), "k", a=1, b=0)
    assert built == {"a": 1, "b": 2}


def test_build_returns_objects_unchanged():
    net = ToyNet()
    assert Builder().build(net, "model") is net


@pytest.mark.parametrize(("name", "expected"), [
    ("CheckpointHook", cockpit.CheckpointHook),
    ("LoggerHook", cockpit.LoggerHook),
    ("RuntimeInfoHook", cockpit.RuntimeInfoHook),
    ("Accuracy", cockpit.Accuracy),
    ("Evaluator", cockpit.Evaluator),
    ("DefaultSampler", cockpit.DefaultSampler),
    ("InfiniteSampler", cockpit.InfiniteSampler),
    ("EpochBasedTrainLoop", cockpit.EpochBasedTrainLoop),
    ("IterBasedTrainLoop", cockpit.IterBasedTrainLoop),
    ("ValLoop", cockpit.ValLoop),
    ("OptimWrapper", cockpit.OptimWrapper),
    ("AmpOptimWrapper", cockpit.AmpOptimWrapper),
])
def test_type_as_a_builtin_short_name(name, expected):
    assert Builder().resolve(name, "k") is expected


def test_every_builtin_name_resolves_to_a_class_of_that_name():
    for name in BUILTINS:
        assert Builder().resolve(name, "k").__name__ == name


def test_builtin_names_build_with_arguments():
    hook = Builder().build(dict(type="CheckpointHook", interval=3, max_keep_ckpts=2), "default_hooks.checkpoint")
    assert isinstance(hook, cockpit.CheckpointHook)
    assert hook.interval == 3
    metric = Builder().build(dict(type="Accuracy", topk=(1, 2)), "val_evaluator")
    assert metric.topk == (1, 2)


@pytest.mark.parametrize(("name", "expected"), [
    ("SGD", torch.optim.SGD),
    ("Adam", torch.optim.Adam),
    ("AdamW", torch.optim.AdamW),
    ("RMSprop", torch.optim.RMSprop),
    ("CosineAnnealingLR", torch.optim.lr_scheduler.CosineAnnealingLR),
    ("LinearLR", torch.optim.lr_scheduler.LinearLR),
    ("StepLR", torch.optim.lr_scheduler.StepLR),
    ("MultiStepLR", torch.optim.lr_scheduler.MultiStepLR),
])
def test_type_as_a_bare_torch_optimizer_or_scheduler_name(name, expected):
    assert Builder().resolve(name, "k") is expected


@pytest.mark.parametrize(("dotted", "expected"), [
    ("torch.optim.AdamW", torch.optim.AdamW),
    ("torch.nn.Linear", torch.nn.Linear),
    ("torch.optim.lr_scheduler.OneCycleLR", torch.optim.lr_scheduler.OneCycleLR),
    ("cockpit.hooks.checkpoint.CheckpointHook", cockpit.CheckpointHook),
])
def test_type_as_a_dotted_import_path(dotted, expected):
    assert Builder().resolve(dotted, "k") is expected


def test_runner_builds_every_type_form_from_a_config_file(tmp_path):
    cfg_file = write_cfg(tmp_path, """
        optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='torch.optim.AdamW', lr=1e-3))
        param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=4)
        default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2),
                             logger=dict(type='LoggerHook', interval=2, backends=('json',)))
    """)
    runner = runner_from(cfg_file)
    assert type(runner.model).__name__ == "Net"
    assert runner.model.net[0].out_features == 8
    assert type(runner.optim_wrapper) is cockpit.OptimWrapper
    assert type(runner.optim_wrapper.optimizer) is torch.optim.AdamW
    assert runner.optim_wrapper.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    checkpoint_hooks = [h for h in runner.hooks if isinstance(h, cockpit.CheckpointHook)]
    assert [h.interval for h in checkpoint_hooks] == [2]
    assert isinstance(runner.train_loop, cockpit.EpochBasedTrainLoop)
    assert isinstance(runner.train_loop.dataloader.sampler, cockpit.DefaultSampler)
    assert runner.train_loop.dataloader.batch_size == 4
    assert [type(s.scheduler) for s in runner.param_schedulers] == [torch.optim.lr_scheduler.CosineAnnealingLR]
    assert isinstance(runner.val_loop, cockpit.ValLoop)
    assert [type(m) for m in runner.val_loop.evaluator.metrics] == [cockpit.Accuracy]


def test_type_as_a_module_beside_the_config_file(tmp_path, fresh_module):
    name = fresh_module("cockpit_test_mynets")
    write(tmp_path / f"{name}.py", PRELUDE.replace("class Net(", "class BesideNet("))
    cfg_file = write_cfg(tmp_path, f"""
        model = dict(type='{name}.BesideNet', width=5)
        train_dataloader = dict(dataset=dict(type='{name}.Data', size=8), batch_size=4)
    """)
    path_before = list(sys.path)
    runner = runner_from(cfg_file)
    assert type(runner.model).__name__ == "BesideNet"
    assert type(runner.model).__module__ == name
    assert sys.modules[name].__file__ == str(tmp_path / f"{name}.py")
    assert runner.model.net[0].out_features == 5
    assert len(runner.train_loop.dataloader.dataset) == 8
    assert sys.path == path_before, "the config's folder must not stay on sys.path"


def test_a_module_beside_the_config_is_not_found_without_the_config_file(tmp_path, fresh_module):
    name = fresh_module("cockpit_test_orphan")
    write(tmp_path / f"{name}.py", "class Net:\n    pass\n")
    with pytest.raises(ConfigError, match="cannot import"):
        Builder(None).resolve(f"{name}.Net", "model")
    assert Builder(str(tmp_path / "cfg.py")).resolve(f"{name}.Net", "model").__name__ == "Net"


def test_a_module_beside_the_config_that_fails_to_import_reports_its_own_error(tmp_path, fresh_module):
    name = fresh_module("cockpit_test_brokennets")
    write(tmp_path / f"{name}.py", "import cockpit_test_not_installed_pkg\n\nclass Net:\n    pass\n")
    cfg_file = write(tmp_path / "cfg.py", f"model = dict(type='{name}.Net')\n")
    error = config_error(cfg_file)
    message = assert_names_file_key_fix(error, cfg_file, "model.type")
    # The module was found; what is missing is the package it imports.
    assert "cockpit_test_not_installed_pkg" in message


# --- unknown types ---------------------------------------------------------------------------
def test_unknown_optimizer_type_suggests_close_matches(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='SDG', lr=0.1))\n")
    error = config_error(cfg_file)
    message = assert_names_file_key_fix(error, cfg_file, "optim_wrapper.optimizer.type")
    assert error.file == str(cfg_file.resolve())
    assert "unknown type 'SDG'" in message
    assert "did you mean 'SGD'" in message
    assert message.startswith(f"{cfg_file.resolve()}: optim_wrapper.optimizer.type: ")


def test_unknown_type_without_close_matches_lists_the_forms(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='Zzqx', lr=0.1))\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "optim_wrapper.optimizer.type")
    assert "did you mean" not in message
    assert "dotted import path" in message


def test_unknown_scheduler_type_names_its_list_index(tmp_path):
    cfg_file = write_cfg(tmp_path, """
        param_scheduler = [dict(type='LinearLR', by_epoch=False, begin=0, end=2),
                           dict(type='CosineAnealingLR', by_epoch=False, begin=2, end=4)]
    """)
    error = config_error(cfg_file, lambda runner: runner.train_loop)
    message = assert_names_file_key_fix(error, cfg_file, "param_scheduler[1].type")
    assert "did you mean 'CosineAnnealingLR'" in message


def test_unknown_hook_type_names_the_default_hook(tmp_path):
    cfg_file = write_cfg(tmp_path, "default_hooks = dict(checkpoint=dict(type='ChekpointHook', interval=1))\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "default_hooks.checkpoint.type")
    assert "did you mean 'CheckpointHook'" in message


def test_unknown_module_in_a_dotted_path(tmp_path):
    cfg_file = write_cfg(tmp_path, "model = dict(type='cockpit_no_such_pkg.nets.Net')\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model.type")
    assert "cannot import 'cockpit_no_such_pkg.nets'" in message


def test_unknown_name_in_a_module_suggests_close_matches(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='torch.optim.AdamX', lr=0.1))\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "optim_wrapper.optimizer.type")
    assert "module 'torch.optim' has no 'AdamX'" in message
    assert "did you mean Adam" in message


@pytest.mark.parametrize("value", ["3", "''", "None"])
def test_type_that_is_not_a_class_or_a_name(tmp_path, value):
    cfg_file = write_cfg(tmp_path, f"model = dict(type={value})\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model.type")
    assert "type must be a class, a function or a name" in message


def test_missing_type_key(tmp_path):
    cfg_file = write_cfg(tmp_path, "model = dict(width=4)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model")
    assert "missing required key 'type'" in message


# --- missing keys ------------------------------------------------------------------------------
def test_missing_required_constructor_argument(tmp_path):
    cfg_file = write_cfg(tmp_path, """
        class NeedsWidth(Net):
            def __init__(self, width, depth=1):
                super().__init__(width)

        model = dict(type=NeedsWidth, depth=2)
    """)
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model.width")
    assert "missing required key 'width' for NeedsWidth" in message
    assert "add width=... to model" in message


def test_dataloader_without_batch_size(tmp_path):
    cfg_file = write_cfg(tmp_path, "train_dataloader = dict(dataset=dict(type=Data))\n")
    message = assert_names_file_key_fix(config_error(cfg_file, lambda runner: runner.train_loop), cfg_file,
                                        "train_dataloader.batch_size")
    assert "missing required key 'batch_size'" in message
    assert "add batch_size=N to train_dataloader" in message


def test_dataloader_without_dataset(tmp_path):
    cfg_file = write_cfg(tmp_path, "val_dataloader = dict(batch_size=4)\n")
    message = assert_names_file_key_fix(config_error(cfg_file, lambda runner: runner.val_loop), cfg_file,
                                        "val_dataloader.dataset")
    assert "missing required key 'dataset'" in message


def test_training_checks_the_val_parts_before_it_starts(tmp_path):
    cfg_file = write_cfg(tmp_path, "val_dataloader = dict(dataset=dict(type=Data))\n")
    runner = runner_from(cfg_file)
    with pytest.raises(ConfigError) as info:
        runner.train()
    assert_names_file_key_fix(info.value, cfg_file, "val_dataloader.batch_size")
    assert runner.iter == 0


def test_train_cfg_without_max_epochs(tmp_path):
    cfg_file = write_cfg(tmp_path, "train_cfg = dict(by_epoch=True, val_interval=1)\n")
    message = assert_names_file_key_fix(config_error(cfg_file, lambda runner: runner.train_loop), cfg_file,
                                        "train_cfg.max_epochs")
    assert "missing required key 'max_epochs'" in message
    assert "or by_epoch=False with max_iters=N" in message


def test_iteration_based_train_cfg_without_max_iters(tmp_path):
    cfg_file = write_cfg(tmp_path, "train_cfg = dict(by_epoch=False, val_interval=2)\n")
    message = assert_names_file_key_fix(config_error(cfg_file, lambda runner: runner.train_loop), cfg_file,
                                        "train_cfg.max_iters")
    assert "missing required key 'max_iters'" in message
    assert "fix: set train_cfg=dict(by_epoch=False, max_iters=N)" in message


def test_train_cfg_chooses_the_loop_from_its_keys(make_runner):
    runner = make_runner(train_cfg=dict(max_iters=3, val_interval=2))
    assert isinstance(runner.train_loop, cockpit.IterBasedTrainLoop)
    assert runner.max_iters == 3
    runner = make_runner(train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=3))
    assert isinstance(runner.train_loop, cockpit.EpochBasedTrainLoop)
    assert runner.max_epochs == 3


def test_optim_wrapper_without_optimizer(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(type='OptimWrapper')\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "optim_wrapper.optimizer")
    assert "missing required key 'optimizer'" in message


def test_missing_model(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", "train_cfg = dict(max_epochs=1)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model")
    assert "missing required key 'model'" in message


# --- unknown arguments and bad values -------------------------------------------------------------
def test_unknown_argument_suggests_the_close_one(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentun=0.9))\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "optim_wrapper.optimizer.momentun")
    assert "SGD has no argument 'momentun'" in message
    assert "did you mean 'momentum'?" in message


def test_unknown_hook_argument(tmp_path):
    cfg_file = write_cfg(tmp_path, "default_hooks = dict(checkpoint=dict(type='CheckpointHook', intervall=2))\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "default_hooks.checkpoint.intervall")
    assert "did you mean 'interval'?" in message


def test_unknown_argument_of_a_custom_hook_names_its_index(tmp_path):
    cfg_file = write_cfg(tmp_path, "custom_hooks = [dict(type='IterTimerHook'), dict(type='LoggerHook', intervl=3)]\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "custom_hooks[1].intervl")
    assert "did you mean 'interval'?" in message


def test_unknown_argument_of_the_model_lists_what_it_takes(tmp_path):
    cfg_file = write_cfg(tmp_path, "model = dict(type=Net, hidden=8)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model.hidden")
    assert "Net has no argument 'hidden'" in message
    assert "Net takes: width" in message


def test_unknown_dataloader_argument(tmp_path):
    cfg_file = write_cfg(tmp_path, """
        train_dataloader = dict(dataset=dict(type=Data), batch_size=4, shufle=True)
    """)
    error = config_error(cfg_file, lambda runner: runner.train_loop)
    message = assert_names_file_key_fix(error, cfg_file, "train_dataloader.shufle")
    assert "did you mean 'shuffle'?" in message


def test_bad_value_from_a_constructor(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='SGD', lr=-1.0))\n")
    error = config_error(cfg_file)
    message = assert_names_file_key_fix(error, cfg_file, "optim_wrapper.optimizer")
    assert "bad value for SGD" in message
    assert "Invalid learning rate" in message
    assert isinstance(error.__cause__, ValueError)


def test_bad_value_of_a_metric(tmp_path):
    cfg_file = write_cfg(tmp_path, "val_evaluator = dict(type='Accuracy', topk=0)\n")
    error = config_error(cfg_file, lambda runner: runner.val_loop)
    message = assert_names_file_key_fix(error, cfg_file, "val_evaluator")
    assert "bad value for Accuracy" in message and "topk" in message


def test_bad_value_of_a_scheduler(tmp_path):
    cfg_file = write_cfg(tmp_path, "param_scheduler = dict(type='LinearLR', by_epoch=False, begin=5, end=2)\n")
    error = config_error(cfg_file, lambda runner: runner.train_loop)
    message = assert_names_file_key_fix(error, cfg_file, "param_scheduler")
    assert "end (2) must be greater than begin (5)" in message


def test_bad_value_of_the_optim_wrapper(tmp_path):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1), accumulative_counts=0)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "optim_wrapper")
    assert "accumulative_counts" in message


def test_bad_max_epochs_names_the_file(tmp_path):
    cfg_file = write_cfg(tmp_path, "train_cfg = dict(by_epoch=True, max_epochs=0)\n")
    error = config_error(cfg_file, lambda runner: runner.train_loop)
    message = assert_names_file_key_fix(error, cfg_file, "train_cfg.max_epochs")
    assert "max_epochs must be a positive int, got 0" in message


def test_model_that_is_not_a_module(tmp_path):
    cfg_file = write_cfg(tmp_path, "model = dict(type=dict, width=3)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model")
    assert "model must build a torch.nn.Module, got dict" in message


def test_model_without_the_step_methods(tmp_path):
    cfg_file = write_cfg(tmp_path, "model = dict(type=nn.Linear, in_features=4, out_features=3)\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "model")
    assert "Linear has no train_step()" in message


def test_a_hook_entry_that_is_not_a_hook(tmp_path):
    cfg_file = write_cfg(tmp_path, "custom_hooks = [dict(type='Accuracy')]\n")
    message = assert_names_file_key_fix(config_error(cfg_file), cfg_file, "custom_hooks[0]")
    assert "Accuracy is not a Hook" in message


def test_an_evaluator_entry_that_is_not_a_metric(tmp_path):
    cfg_file = write_cfg(tmp_path, "val_evaluator = [dict(type='Accuracy'), dict(type='CheckpointHook')]\n")
    error = config_error(cfg_file, lambda runner: runner.val_loop)
    message = assert_names_file_key_fix(error, cfg_file, "val_evaluator")
    assert "CheckpointHook is not a metric" in message


def test_scheduler_entry_without_a_type(tmp_path):
    cfg_file = write_cfg(tmp_path, "param_scheduler = [dict(by_epoch=False, begin=0, end=4)]\n")
    error = config_error(cfg_file, lambda runner: runner.train_loop)
    message = assert_names_file_key_fix(error, cfg_file, "param_scheduler[0]")
    assert "each scheduler must be a dict with a type" in message


def test_errors_from_overrides_are_reported_like_errors_in_the_file(tmp_path):
    cfg_file = write_cfg(tmp_path)
    error = config_error(cfg_file, options=["optim_wrapper.optimizer.type=SDG"])
    message = assert_names_file_key_fix(error, cfg_file, "optim_wrapper.optimizer.type")
    assert "did you mean 'SGD'" in message


# --- the runner's rules ------------------------------------------------------------------------------
TRAIN = ("train_dataloader", "train_cfg", "optim_wrapper")
VAL = ("val_dataloader", "val_cfg", "val_evaluator")
TEST_PARTS = dict(test_dataloader=dict(dataset=dict(type=ToyData, size=8), batch_size=4),
                  test_cfg=dict(), test_evaluator=dict(type="Accuracy"))


@pytest.mark.parametrize("group", [TRAIN, VAL], ids=["train", "val"])
@pytest.mark.parametrize("dropped", [0, 1, 2])
def test_all_or_none_drop_one(make_runner, group, dropped):
    removed = group[dropped]
    with pytest.raises(ConfigError) as info:
        make_runner(**{removed: None})
    error = info.value
    message = str(error)
    assert error.key == removed
    assert f"{', '.join(group)} should be either all None or not None" in message
    assert f"{removed} is not" in message
    assert f"fix: set {removed} too, or remove " in message


@pytest.mark.parametrize("given", list(TEST_PARTS))
def test_all_or_none_for_test_parts(make_runner, given):
    with pytest.raises(ConfigError) as info:
        make_runner(**{given: TEST_PARTS[given]})
    missing = [name for name in TEST_PARTS if name != given]
    assert info.value.key == missing[0]
    message = str(info.value)
    assert f"{given} is set and {', '.join(missing)} are not" in message
    assert f"fix: set {' and '.join(missing)} too, or remove {given}" in message


def test_all_or_none_accepts_all_and_none(make_runner, tmp_path):
    runner = make_runner(**TEST_PARTS)
    assert isinstance(runner.test_loop, cockpit.TestLoop)
    bare = make_runner(**{key: None for key in (*TRAIN, *VAL)})
    assert bare.optim_wrapper is None
    assert bare.val_loop is None
    with pytest.raises(RuntimeError, match="no training"):
        bare.train_loop  # noqa: B018


def test_an_empty_val_cfg_counts_as_given(make_runner):
    with pytest.raises(ConfigError) as info:
        make_runner(val_dataloader=None, val_evaluator=None)
    assert info.value.key == "val_dataloader"


def test_param_scheduler_without_optim_wrapper(make_runner):
    with pytest.raises(ConfigError) as info:
        make_runner(train_dataloader=None, train_cfg=None, optim_wrapper=None,
                    param_scheduler=dict(type="LinearLR", by_epoch=False, begin=0, end=4))
    assert info.value.key == "param_scheduler"
    message = str(info.value)
    assert "param_scheduler should be None when optim_wrapper is None" in message
    assert "fix: add optim_wrapper" in message


def test_resume_path_with_load_from(make_runner, tmp_path):
    with pytest.raises(ConfigError) as info:
        make_runner(resume=str(tmp_path / "a.pth"), load_from=str(tmp_path / "b.pth"))
    assert info.value.key == "load_from"
    assert "If resume is a str, load_from should be None." in str(info.value)
    assert "fix: " in str(info.value)
    # resume=True with load_from, and a resume path alone, are both fine.
    assert make_runner(resume=True, load_from=str(tmp_path / "b.pth")) is not None
    assert make_runner(resume=str(tmp_path / "a.pth")) is not None


def test_bad_launcher(make_runner):
    with pytest.raises(ConfigError) as info:
        make_runner(launcher="mpi")
    assert info.value.key == "launcher"
    assert "fix: " in str(info.value)


def test_runner_init_with_objects_checks_the_same_rules(tmp_path):
    with pytest.raises(ConfigError) as info:
        Runner(ToyNet(), work_dir=tmp_path, train_cfg=dict(max_epochs=1), log_to_console=False)
    assert info.value.key == "train_dataloader"


@pytest.mark.parametrize(("extra", "key"), [
    ("train_cfg = None\n", "train_cfg"),
    ("val_evaluator = None\n", "val_evaluator"),
    ("test_dataloader = dict(dataset=dict(type=Data), batch_size=4)\n", "test_cfg"),
    ("train_dataloader = train_cfg = optim_wrapper = None\n"
     "param_scheduler = dict(type='LinearLR', by_epoch=False, begin=0, end=4)\n", "param_scheduler"),
    ("resume = 'a.pth'\nload_from = 'b.pth'\n", "load_from"),
], ids=["train", "val", "test", "param_scheduler", "resume"])
def test_runner_rule_errors_name_the_config_file(tmp_path, extra, key):
    # "Every error names the file": a rule broken in cfg.py must point at cfg.py.
    cfg_file = write_cfg(tmp_path, extra)
    assert_names_file_key_fix(config_error(cfg_file), cfg_file, key)


# --- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """``run_cli(*argv)`` calls ``cockpit.cli.main`` in-process from ``tmp_path``; returns its exit code."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() takes the current folder off sys.path

    def run(*argv: str) -> int:
        return cli.main(list(argv))

    return run


def test_cli_exits_2_and_prints_the_config_error(tmp_path, run_cli, capsys):
    cfg_file = write_cfg(tmp_path, "optim_wrapper = dict(optimizer=dict(type='SDG', lr=0.1))\n")
    code = run_cli("run", str(cfg_file), "--no-tui", "--work-dir", str(tmp_path / "work"))
    assert code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("cockpit: config error: ")
    assert str(cfg_file.resolve()) in captured.err
    assert "optim_wrapper.optimizer.type" in captured.err
    assert "did you mean 'SGD'" in captured.err
    assert "\n  fix: " in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "work").exists()


def test_cli_syntax_error_exits_2_with_the_line(tmp_path, run_cli, capsys):
    cfg_file = write(tmp_path / "cfg.py", "lr = 0.1\nmodel = dict(type='Net'\n")
    assert run_cli("hooks", str(cfg_file)) == 2
    err = capsys.readouterr().err
    assert "cockpit: config error: " in err
    assert f"{cfg_file.resolve()}:2" in err
    assert "syntax error on line 2" in err


def test_cli_bad_override_exits_2(tmp_path, run_cli, capsys):
    cfg_file = write_cfg(tmp_path)
    assert run_cli("hooks", str(cfg_file), "--cfg-options", "train_cfg.max_epochs") == 2
    err = capsys.readouterr().err
    assert "'train_cfg.max_epochs' is not key=value" in err
    assert "fix:" in err


def test_cli_missing_config_file_exits_2(tmp_path, run_cli, capsys):
    assert run_cli("hooks", str(tmp_path / "nope.py")) == 2
    assert "nope.py does not exist" in capsys.readouterr().err


def test_cli_error_found_when_training_starts_exits_2(tmp_path, run_cli, capsys):
    cfg_file = write_cfg(tmp_path, "train_cfg = dict(by_epoch=True)\n")
    code = run_cli("run", str(cfg_file), "--no-tui", "--work-dir", str(tmp_path / "work"))
    assert code == 2
    err = capsys.readouterr().err
    assert "cockpit: config error: " in err
    assert "train_cfg.max_epochs" in err and str(cfg_file.resolve()) in err


def test_cli_hooks_on_a_good_config_exits_0(tmp_path, run_cli, capsys):
    cfg_file = write_cfg(tmp_path)
    assert run_cli("hooks", str(cfg_file), "--cfg-options", "default_hooks.logger.interval=3") == 0
    captured = capsys.readouterr()
    assert "CheckpointHook" in captured.out and "LoggerHook" in captured.out
    assert captured.err == ""

