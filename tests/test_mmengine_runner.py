"""An MMEngine user's top-level keys, loops, schedulers and data options behave as in MMEngine 0.10.7,
or fail with an error that says what to write instead.

Expectations are MMEngine's (``mmengine/runner/runner.py``: ``scale_lr``, ``setup_env``,
``wrap_model``, ``_maybe_compile``; ``runner/loops.py``; ``optim/scheduler/param_scheduler.py``;
``dataset/utils.py``), read from its source at v0.10.7.
"""

from __future__ import annotations

import functools
import textwrap

import pytest
import torch

from cockpit import ConfigError, Hook, Runner
from cockpit.config import Config
from cockpit.data import pseudo_collate


def _lrs(runner) -> list[float]:
    return [group["lr"] for group in runner.optim_wrapper.param_groups]


# --- item 3: top-level keys MMEngine acts on ---------------------------------------------------------
def test_auto_scale_lr_scales_by_the_real_batch_over_the_base(make_runner):
    # batch 8 x 1 process against a base of 32: lr 0.1 x 8/32 (MMEngine's linear scaling rule)
    runner = make_runner(auto_scale_lr=dict(enable=True, base_batch_size=32))
    runner.train_loop  # noqa: B018 - built: the lr is scaled before the schedulers record it
    assert _lrs(runner) == [pytest.approx(0.025)]
    off = make_runner(auto_scale_lr=dict(enable=False, base_batch_size=32))
    off.train_loop  # noqa: B018
    assert _lrs(off) == [pytest.approx(0.1)]
    with pytest.raises(ConfigError, match="base_batch_size"):
        make_runner(auto_scale_lr=dict(enable=True)).train_loop  # noqa: B018


def test_auto_scale_lr_comes_before_the_schedulers_base(make_runner):
    runner = make_runner(auto_scale_lr=dict(enable=True, base_batch_size=16),
                         param_scheduler=dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=4))
    runner.train_loop  # noqa: B018
    assert runner.param_schedulers[0].scheduler.base_lrs == [pytest.approx(0.05)]


def test_custom_imports_are_imported_from_the_configs_folder(tmp_path):
    (tmp_path / "my_hooks.py").write_text("import sys\nsys.modules[__name__].LOADED = True\n")
    cfg_file = tmp_path / "cfg.py"
    cfg_file.write_text("custom_imports = dict(imports=['my_hooks'], allow_failed_imports=False)\n")
    import sys

    Config.fromfile(cfg_file)
    assert sys.modules["my_hooks"].LOADED
    assert str(tmp_path) not in sys.path, "the config's folder is importable only while it loads"
    cfg_file.write_text("custom_imports = dict(imports=['no_such_module_here'])\n")
    with pytest.raises(ConfigError, match="no_such_module_here"):
        Config.fromfile(cfg_file)
    cfg_file.write_text("custom_imports = dict(imports=['no_such_module_here'], allow_failed_imports=True)\n")
    with pytest.warns(UserWarning, match="no_such_module_here"):
        Config.fromfile(cfg_file)


def test_visualizer_backends_become_the_loggers_writers(make_runner):
    runner = make_runner(default_hooks=dict(logger=dict(type="LoggerHook", interval=4)),
                         visualizer=dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend"),
                                                                           dict(type="TensorboardVisBackend")]))
    logger = next(h for h in runner.hooks if type(h).__name__ == "LoggerHook")
    assert tuple(logger.backends) == ("json", "tensorboard")
    with pytest.raises(ConfigError, match="WandbVisBackend") as error:
        make_runner(visualizer=dict(type="Visualizer", vis_backends=[dict(type="WandbVisBackend")]))
    assert "LocalVisBackend" in error.value.fix


def test_runner_visualizer_records_scalars_and_refuses_images(make_runner):
    runner = make_runner()
    runner.visualizer.add_scalars({"custom/x": 3.0}, step=7)
    assert runner.message_hub.get_scalar("custom/x").current() == 3.0
    with pytest.raises(NotImplementedError, match="scalars only"):
        runner.visualizer.add_image("img", None)


def test_compile_wraps_train_step_with_torch_compile(make_runner):
    # the eager backend needs no C compiler
    runner = make_runner(compile=dict(backend="eager"), default_hooks=dict(checkpoint=None),
                         train_cfg=dict(by_epoch=True, max_epochs=1))
    original = runner.model.train_step
    runner.train()
    assert runner.model.train_step is not original
    assert runner.message_hub.status == "finished"
    with pytest.raises(ConfigError, match="compile"):
        make_runner(compile="yes")


def test_log_level_and_env_cfg_are_honoured(make_runner):
    runner = make_runner(log_level="WARNING", env_cfg=dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method="fork",
                                                                                              opencv_num_threads=0)))
    assert runner.logger.level == 30
    assert torch.backends.cudnn.benchmark is True
    torch.backends.cudnn.benchmark = False
    with pytest.raises(ConfigError, match="mp_cfg"):
        make_runner(env_cfg=dict(mp_cfg=dict(spawn_everything=True)))


def test_model_wrapper_cfg_gives_the_ddp_arguments():
    from cockpit.mmengine_keys import ddp_arguments

    assert ddp_arguments({}, {}) == {"broadcast_buffers": False}  # MMEngine's default wrapper
    assert ddp_arguments({"find_unused_parameters": True}, {}) == {"find_unused_parameters": True,
                                                                    "broadcast_buffers": False}
    assert ddp_arguments({"model_wrapper_cfg": dict(type="MMDistributedDataParallel", static_graph=True)}, {}) == {
        "static_graph": True}
    with pytest.raises(ConfigError, match="MMFullyShardedDataParallel"):
        ddp_arguments({"model_wrapper_cfg": dict(type="MMFullyShardedDataParallel")}, {})


def test_default_scope_is_accepted_and_a_registry_name_is_explained(make_runner):
    runner = make_runner(default_scope="mmpretrain")
    assert runner.message_hub.status == "created"
    with pytest.raises(ConfigError) as error:
        make_runner(default_scope="mmpretrain", model=dict(type="ImageClassifier"))
    assert "no registries" in error.value.fix and "import path" in error.value.fix


def test_config_variables_mmengine_ignores_stay_allowed(tmp_path):
    cfg_file = tmp_path / "cfg.py"
    cfg_file.write_text(textwrap.dedent("""
        from toys import ToyNet
        data_root = 'data/'
        train_pipeline = [dict(type='LoadImage')]
        model = dict(type=ToyNet)
        work_dir = '""" + str(tmp_path / "w") + """'
    """))
    runner = Runner.from_cfg(cfg_file, log_to_console=False)
    assert runner.cfg["data_root"] == "data/"


# --- item 6: keys MMEngine acts on and Cockpit does not implement are refused ---------------------------
@pytest.mark.parametrize(("key", "value", "fix"), [
    ("data_preprocessor", dict(type="ImgDataPreprocessor"), "BaseModel.data_preprocessor"),
    ("activation_checkpointing", ["backbone"], "torch.utils.checkpoint"),
    ("efficient_conv_bn_eval", ["backbone"], "remove it"),
    ("sync_bn", "mmcv", "sync_bn='torch'"),
])
def test_keys_mmengine_acts_on_are_refused_with_the_fix(make_runner, key, value, fix):
    with pytest.raises(ConfigError, match=key) as error:
        make_runner(**{key: value})
    assert fix in error.value.fix


@pytest.mark.parametrize(("name", "fix"), [
    ("PolyLR", "PolynomialLR"), ("CosineRestartLR", "CosineAnnealingWarmRestarts"), ("OneCycleLR", "max_lr"),
    ("LinearMomentum", "learning rate only"), ("LinearParamScheduler", "LinearLR"),
])
def test_mmengine_scheduler_names_without_an_equivalent_say_what_to_write(make_runner, name, fix):
    runner = make_runner(param_scheduler=dict(type=name, by_epoch=False, begin=0, end=4))
    if name == "OneCycleLR":  # torch has one by that name, with other arguments
        with pytest.raises(ConfigError, match="OneCycleLR"):
            runner.train_loop  # noqa: B018
        return
    with pytest.raises(ConfigError, match=name) as error:
        runner.train_loop  # noqa: B018
    assert fix in error.value.fix


def test_unknown_hook_arguments_are_refused(make_runner):
    with pytest.raises(ConfigError, match="no argument 'intervall'"):
        make_runner(default_hooks=dict(checkpoint=dict(type="CheckpointHook", intervall=1)))


# --- item 9: ReduceOnPlateauLR, stepped with the validation metrics -----------------------------------
class Metric(Hook):
    """Feeds a fixed sequence of metric values to the plateau scheduler through after_val_epoch."""

    priority = "VERY_HIGH"

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)
        self.lrs: list[float] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        metrics["accuracy/top1"] = self.values.pop(0)

    def after_train_epoch(self, runner) -> None:
        self.lrs.append(runner.optim_wrapper.param_groups[0]["lr"])


def test_reduce_on_plateau_lowers_the_lr_after_patience_validations_without_improvement(make_runner):
    # greater is better: 0.5, 0.6 improve; 0.6, 0.55 do not -> after 2 bad epochs (> patience 1) lr x 0.5
    runner = make_runner(custom_hooks=[Metric([0.5, 0.6, 0.6, 0.55, 0.7])],
                         train_cfg=dict(by_epoch=True, max_epochs=5, val_interval=1),
                         default_hooks=dict(checkpoint=None),
                         param_scheduler=dict(type="ReduceOnPlateauLR", monitor="accuracy/top1", rule="greater",
                                              factor=0.5, patience=1))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, Metric))
    # lr as each epoch ends (before that epoch's validation)
    assert hook.lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05])


def test_reduce_on_plateau_needs_a_known_metric_and_by_epoch(make_runner):
    runner = make_runner(param_scheduler=dict(type="ReduceOnPlateauLR", monitor="nope"),
                         default_hooks=dict(checkpoint=None))
    with pytest.raises(KeyError, match="nope"):
        runner.train()
    with pytest.raises(ConfigError, match="by_epoch"):
        make_runner(param_scheduler=dict(type="ReduceOnPlateauLR", by_epoch=False)).train_loop  # noqa: B018
    with pytest.raises(ConfigError, match="ReduceOnPlateauLR"):
        make_runner(param_scheduler=dict(type="ReduceLROnPlateau")).train_loop  # noqa: B018


# --- item 11 and 21: what hook authors read -------------------------------------------------------------
class Reader(Hook):
    def __init__(self) -> None:
        self.seen: list = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.seen.append((outputs["loss"].item(), runner.distributed, runner.model_name, runner.val_interval,
                          runner.log_processor.window_size))


def test_outputs_hold_tensors_and_runner_attributes_exist(make_runner):
    runner = make_runner(custom_hooks=[Reader()], default_hooks=dict(checkpoint=None),
                         log_processor=dict(window_size=20))
    runner.train()
    seen = next(h for h in runner.hooks if isinstance(h, Reader)).seen
    loss, distributed, model_name, val_interval, window = seen[0]
    assert isinstance(loss, float) and distributed is False and model_name == "ToyNet"
    assert val_interval == 1 and window == 20
    assert runner.message_hub.get_scalar("train/loss").current() == pytest.approx(seen[-1][0])


# --- item 13: dynamic_intervals, fp16 evaluation, num_batch_per_epoch --------------------------------------
class ValCount(Hook):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.epochs.append(runner.epoch)


def test_dynamic_intervals_change_the_validation_interval_at_each_milestone(make_runner):
    # val_interval 3, then every epoch from epoch 5 on; MMEngine validates after epochs 3, 5, 6, 7
    runner = make_runner(custom_hooks=[ValCount()], default_hooks=dict(checkpoint=None),
                         train_cfg=dict(by_epoch=True, max_epochs=7, val_interval=3, dynamic_intervals=[(5, 1)]))
    runner.train()
    assert next(h for h in runner.hooks if isinstance(h, ValCount)).epochs == [3, 5, 6, 7]
    assert runner.val_interval == 1
    with pytest.raises(ConfigError, match="dynamic_intervals"):
        make_runner(train_cfg=dict(by_epoch=True, max_epochs=2, dynamic_intervals=[(5, 1), (3, 2)])).train_loop  # noqa: B018


class Recording:
    """A ToyNet that notes the dtype its logits had in each prediction."""

    dtypes: list = []

    @staticmethod
    def make():
        from toys import ToyNet

        class RecordingNet(ToyNet):
            def forward(self, inputs, data_samples=None, mode="tensor"):
                if mode == "predict":
                    Recording.dtypes.append(self.net(inputs).dtype)
                return super().forward(inputs, data_samples, mode)

        return RecordingNet


def test_val_cfg_fp16_runs_validation_under_autocast(make_runner):
    Recording.dtypes = []
    runner = make_runner(model=dict(type=Recording.make()), val_cfg=dict(fp16=True))
    assert "accuracy/top1" in runner.val()
    assert Recording.dtypes and set(Recording.dtypes) == {torch.bfloat16}  # MMEngine's autocast on CPU
    Recording.dtypes = []
    make_runner(model=dict(type=Recording.make())).val()
    assert set(Recording.dtypes) == {torch.float32}


def test_num_batch_per_epoch_cuts_each_epoch(make_runner):
    runner = make_runner(train_dataloader=dict(dataset=dict(type="toys.ToyData", size=64), batch_size=8,
                                               num_batch_per_epoch=3),
                         default_hooks=dict(checkpoint=None))
    runner.train()
    assert runner.iter == 2 * 3  # 2 epochs of 3 batches


# --- item 14: collate functions --------------------------------------------------------------------------
def pad_collate(batch, pad_value=0):
    return ("padded", pad_value, len(batch))


def test_collate_fn_binds_its_arguments_and_knows_mmengines_names(make_runner):
    runner = make_runner(train_dataloader=dict(dataset=dict(type="toys.ToyData", size=16), batch_size=8,
                                               collate_fn=dict(type=pad_collate, pad_value=-1)))
    collate = runner.train_dataloader.collate_fn
    assert isinstance(collate, functools.partial) and collate([1, 2]) == ("padded", -1, 2)
    default = make_runner(train_dataloader=dict(dataset=dict(type="toys.ToyData", size=16), batch_size=8,
                                                collate_fn=dict(type="default_collate")))
    assert default.train_dataloader.collate_fn is torch.utils.data.default_collate
    pseudo = make_runner(train_dataloader=dict(dataset=dict(type="toys.ToyData", size=16), batch_size=8,
                                               collate_fn=dict(type="pseudo_collate")))
    assert pseudo.train_dataloader.collate_fn is pseudo_collate


def test_pseudo_collate_regroups_without_stacking():
    a, b = torch.ones(2), torch.zeros(2)
    assert pseudo_collate([{"x": a, "y": 1}, {"x": b, "y": 2}]) == {"x": [a, b], "y": [1, 2]}
    fields = pseudo_collate([(a, 1), (b, 2)])
    assert fields == [[a, b], [1, 2]]
    with pytest.raises(RuntimeError, match="same number"):
        pseudo_collate([(a, 1), (b,)])
