"""Config to objects: the one place that reads ``type=`` and calls constructors.

``type`` may be a class or function (the pure-Python style), the short name of
a Cockpit built-in (the ``BUILTINS`` table below, the only name table there
is), a torch optimizer or LR scheduler by bare class name (``'SGD'``,
``'CosineAnnealingLR'``), or a dotted import path (``'torch.optim.AdamW'``,
``'mypkg.nets.ResNet'``). Every failure is a ``ConfigError`` naming the file,
the key path and the fix.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from cockpit import dist, mmengine_keys
from cockpit.errors import ConfigError
from cockpit.evaluator import BaseMetric, Evaluator
from cockpit.hooks.base import Hook
from cockpit.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from cockpit.optim import OptimWrapper
from cockpit.schedulers import ParamScheduler, ReduceOnPlateauLR
from cockpit.wrappers import CockpitDDP

#: The runner's keys, MMEngine's names.
RUNNER_KEYS = (
    "model", "work_dir", "experiment_name", "train_dataloader", "optim_wrapper", "param_scheduler", "train_cfg",
    "val_dataloader", "val_evaluator", "val_cfg", "test_dataloader", "test_evaluator", "test_cfg",
    "default_hooks", "custom_hooks", "load_from", "resume", "launcher", "env_cfg", "log_processor",
    "log_level", "randomness", "auto_scale_lr", "visualizer", "default_scope",
    "health_guard",  # Cockpit's own (COCKPIT_HOOK_KEYS below)
)

#: MMEngine's default hooks; ``default_hooks`` in a config overrides or (with None) removes them.
DEFAULT_HOOKS: dict[str, dict] = {
    "runtime_info": {"type": "RuntimeInfoHook"},
    "timer": {"type": "IterTimerHook"},
    "sampler_seed": {"type": "DistSamplerSeedHook"},
    "logger": {"type": "LoggerHook"},
    "param_scheduler": {"type": "ParamSchedulerHook"},
    "checkpoint": {"type": "CheckpointHook", "interval": 1},
}


def _all_or_none(names: tuple[str, ...], values: tuple[Any, ...], file: str | None) -> None:
    given = [n for n, v in zip(names, values, strict=True) if v is not None]
    if given and len(given) != len(names):
        missing = [n for n in names if n not in given]
        raise ConfigError(
            f"{', '.join(names)} should be either all None or not None, but {', '.join(given)} "
            f"{'is' if len(given) == 1 else 'are'} set and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not",
            file=file, key=missing[0], fix=f"set {' and '.join(missing)} too, or remove {' and '.join(given)}",
        )


def check_runner_keys(keys: Mapping[str, Any], file: str | None) -> None:
    """MMEngine's rules for which runner keys go together; a ConfigError naming the fix otherwise."""
    get = keys.get
    _all_or_none(("train_dataloader", "train_cfg", "optim_wrapper"),
                 (get("train_dataloader"), get("train_cfg"), get("optim_wrapper")), file)
    if get("param_scheduler") is not None and get("optim_wrapper") is None:
        raise ConfigError("param_scheduler should be None when optim_wrapper is None", file=file,
                          key="param_scheduler",
                          fix="add optim_wrapper (and train_dataloader, train_cfg) or remove param_scheduler")
    for mode in ("val", "test"):
        names = (f"{mode}_dataloader", f"{mode}_cfg", f"{mode}_evaluator")
        _all_or_none(names, tuple(get(n) for n in names), file)
    if isinstance(get("resume"), str) and get("load_from") is not None:
        raise ConfigError("If resume is a str, load_from should be None.", file=file, key="load_from",
                          fix="use resume='path' to resume, or load_from='path' with resume=False for weights")
    if get("launcher", "none") not in ("none", "pytorch", "slurm"):
        raise ConfigError(f"launcher must be 'none', 'pytorch' or 'slurm', got {get('launcher')!r}", file=file,
                          key="launcher", fix="use launcher='pytorch' under torchrun")


def runner_arguments(cfg: Any) -> dict[str, Any]:
    """The ``Runner`` arguments a config gives (MMEngine's ``from_cfg``); ``work_dir`` defaults to
    ``work_dirs/<config name>``."""
    if "model" not in cfg:
        raise ConfigError("missing required key 'model'", file=cfg.filename, key="model",
                          fix="add model = dict(type=MyModel, ...) to the config")
    kwargs = {key: cfg[key] for key in RUNNER_KEYS if key in cfg}
    if "work_dir" not in kwargs:
        kwargs["work_dir"] = str(Path("work_dirs") / (Path(cfg.filename).stem if cfg.filename else "run"))
    return {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in kwargs.items()}


#: Cockpit's own top-level keys, each standing for a hook that MMEngine does not have (so they stay out
#: of ``DEFAULT_HOOKS``, which mirrors MMEngine): absent means on with its defaults, None turns it off.
COCKPIT_HOOK_KEYS: dict[str, str] = {"health_guard": "HealthGuardHook"}


def cockpit_hooks(cfg: Mapping[str, Any], file: str | None = None) -> list[Any]:
    """The hooks Cockpit's own top-level keys ask for (``health_guard=dict(...)``), checked and built.

    Raises:
        ConfigError: a value that is not a dict, True or None; an unknown sub-key (named, with the
            allowed ones); a bad value.
    """
    hooks = []
    for key, type_name in COCKPIT_HOOK_KEYS.items():
        value = cfg.get(key, {})
        if value is None or value is False:
            continue
        if value is True:
            value = {}
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a dict of options, True or None, got {value!r}", file=file, key=key,
                              fix=f"write {key}=dict(...) to configure it, or {key}=None to turn it off")
        module, _, name = BUILTINS[type_name].partition(":")
        hook_type = getattr(importlib.import_module(module), name)
        allowed = [p for p in inspect.signature(hook_type).parameters if p != "self"]
        unknown = [k for k in value if k not in allowed]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{key} has no option {unknown[0]!r}", file=file, key=f"{key}.{unknown[0]}",
                              fix=f"{hint}{key} takes: {', '.join(allowed)} (or {key}=None to turn it off)")
        try:
            hooks.append(hook_type(**value))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"bad value in {key}: {error}", file=file, key=key,
                              fix=f"check the values under {key}") from None
    return hooks


def merged_default_hooks(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """MMEngine's default hooks with ``default_hooks`` applied (a None value removes one)."""
    merged: dict[str, Any] = dict(DEFAULT_HOOKS)
    for name, hook in (overrides or {}).items():
        if hook is None:
            merged.pop(name, None)
        else:
            merged[name] = hook
    return merged

#: Cockpit's own hooks, loops, metrics, optimizer wrappers and samplers, by short name.
BUILTINS: dict[str, str] = {
    "RuntimeInfoHook": "cockpit.hooks.runtime_info:RuntimeInfoHook",
    "IterTimerHook": "cockpit.hooks.iter_timer:IterTimerHook",
    "DistSamplerSeedHook": "cockpit.hooks.sampler_seed:DistSamplerSeedHook",
    "LoggerHook": "cockpit.hooks.logger:LoggerHook",
    "ParamSchedulerHook": "cockpit.hooks.param_scheduler:ParamSchedulerHook",
    "CheckpointHook": "cockpit.hooks.checkpoint:CheckpointHook",
    "HealthGuardHook": "cockpit.hooks.health:HealthGuardHook",
    "EpochBasedTrainLoop": "cockpit.loops:EpochBasedTrainLoop",
    "IterBasedTrainLoop": "cockpit.loops:IterBasedTrainLoop",
    "ValLoop": "cockpit.loops:ValLoop",
    "TestLoop": "cockpit.loops:TestLoop",
    "Accuracy": "cockpit.evaluator:Accuracy",
    "Evaluator": "cockpit.evaluator:Evaluator",
    "OptimWrapper": "cockpit.optim:OptimWrapper",
    "AmpOptimWrapper": "cockpit.optim:AmpOptimWrapper",
    "DefaultSampler": "cockpit.data:DefaultSampler",
    "InfiniteSampler": "cockpit.data:InfiniteSampler",
    "ReduceOnPlateauLR": "cockpit.schedulers:ReduceOnPlateauLR",
    "default_collate": "torch.utils.data:default_collate",
    "pseudo_collate": "cockpit.data:pseudo_collate",
}


#: MMEngine type names with no Cockpit equivalent, and what to write instead.
MMENGINE_ONLY: dict[str, str] = {
    "PolyLR": "use torch's type='PolynomialLR' (power=..., the same curve when eta_min=0; total_iters defaults "
              "to end - begin)",
    "CosineRestartLR": "use torch's type='CosineAnnealingWarmRestarts' (T_0=..., T_mult=..., eta_min=...)",
    "OneCycleLR": "torch's OneCycleLR takes max_lr and total_steps (MMEngine's eta_max and total_steps): "
                  "write type='torch.optim.lr_scheduler.OneCycleLR', max_lr=...",
    "ReduceOnPlateauParamScheduler": "use type='ReduceOnPlateauLR' (the learning rate is the only scheduled value)",
    **{f"{name}Momentum": "Cockpit schedules the learning rate only; remove momentum schedulers"
       for name in ("Constant", "CosineAnnealing", "Exponential", "Linear", "MultiStep", "OneCycle", "Poly",
                    "Step", "CosineRestart", "ReduceOnPlateau")},
    **{f"{name}ParamScheduler": f"use the learning-rate scheduler type='{name}LR' (Cockpit schedules the "
                                "learning rate only)"
       for name in ("Constant", "CosineAnnealing", "Exponential", "Linear", "MultiStep", "Step")},
    "MMDistributedDataParallel": "Cockpit wraps the model in DistributedDataParallel itself under torchrun; "
                                 "set DDP arguments in model_wrapper_cfg",
    "ImgDataPreprocessor": "Cockpit has no data preprocessor modules: override BaseModel.data_preprocessor",
    "BaseDataPreprocessor": "Cockpit has no data preprocessor modules: override BaseModel.data_preprocessor",
}


def _torch_names(module: Any, base: type) -> dict[str, type]:
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base and not name.startswith("_")}


_OPTIMIZERS = _torch_names(torch.optim, torch.optim.Optimizer)
_LR_SCHEDULERS = _torch_names(torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler)


class Builder:
    """Builds objects from config dicts, reporting errors against ``filename``.

    Args:
        filename: the config file the dicts came from (for error messages).
    """

    def __init__(self, filename: str | None = None, default_scope: str | None = None) -> None:
        self.filename = filename
        self.default_scope = default_scope

    def error(self, message: str, key: str, fix: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.filename, key=key, fix=fix)

    # --- types ------------------------------------------------------------------
    def resolve(self, type_value: Any, key: str) -> Callable[..., Any]:
        """The class or function a ``type`` value names."""
        if callable(type_value):
            return type_value
        if not isinstance(type_value, str) or not type_value:
            raise self.error(f"type must be a class, a function or a name, got {type_value!r}", f"{key}.type",
                             "write type=MyClass, type='SGD' or type='mypkg.module.MyClass'")
        if type_value in BUILTINS:
            module, _, name = BUILTINS[type_value].partition(":")
            return getattr(importlib.import_module(module), name)
        if type_value in _OPTIMIZERS:
            return _OPTIMIZERS[type_value]
        if type_value in _LR_SCHEDULERS:
            return _LR_SCHEDULERS[type_value]
        if "." in type_value:
            return self._import(type_value, key)
        if type_value in MMENGINE_ONLY:
            raise self.error(f"{type_value!r} is an MMEngine type that Cockpit does not provide", f"{key}.type",
                             MMENGINE_ONLY[type_value])
        known = [*BUILTINS, *_OPTIMIZERS, *_LR_SCHEDULERS]
        close = difflib.get_close_matches(type_value, known, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        scope = (f"Cockpit has no registries, so default_scope={self.default_scope!r} cannot find "
                 f"{type_value!r}: " if self.default_scope else "")
        raise self.error(f"unknown type {type_value!r}", f"{key}.type",
                         f"{hint}{scope}use a class object, a Cockpit built-in name, a torch optimizer or scheduler "
                         "name, or a dotted import path like 'mypkg.nets.ResNet'")

    def _import(self, dotted: str, key: str) -> Callable[..., Any]:
        module_name, _, attr = dotted.rpartition(".")
        extra = [str(Path(self.filename).parent)] if self.filename else []
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as first_error:
            # A module beside the config file (``nets.Net`` next to cfg.py) is found too.
            module = None
            if extra and extra[0] not in sys.path:
                sys.path.insert(0, extra[0])
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as error:
                    missing = error.name or ""
                    if missing and not module_name.startswith(missing) and not missing.startswith(module_name):
                        # The module was found but itself imports something missing: say that.
                        raise self.error(f"importing {module_name!r} for type {dotted!r} failed: {error}",
                                         f"{key}.type", f"install {missing!r} or fix the import in "
                                         f"{module_name}") from None
                    module = None
                finally:
                    sys.path.remove(extra[0])
            if module is None:
                raise self.error(f"cannot import {module_name!r} for type {dotted!r}: {first_error}", f"{key}.type",
                                 "check the spelling, and that the package is installed or on PYTHONPATH") from None
        try:
            return getattr(module, attr)
        except AttributeError:
            names = [n for n in dir(module) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.error(f"module {module_name!r} has no {attr!r}{hint}", f"{key}.type",
                             f"name a class that exists in {module_name}") from None

    # --- generic build ------------------------------------------------------------
    def build(self, cfg: Any, key: str, **defaults: Any) -> Any:
        """Build ``cfg`` (a dict with ``type``), or return it as is if it is already an object."""
        if not isinstance(cfg, Mapping):
            return cfg
        cfg = dict(cfg)
        if "type" not in cfg:
            raise self.error("missing required key 'type'", key, f"add type=... to {key}")
        obj_type = self.resolve(cfg.pop("type"), key)
        kwargs = {**defaults, **cfg}
        return self.call(obj_type, kwargs, key)

    def call(self, obj_type: Callable[..., Any], kwargs: dict[str, Any], key: str) -> Any:
        """Call ``obj_type(**kwargs)``, turning a signature mismatch into a ConfigError."""
        name = getattr(obj_type, "__name__", repr(obj_type))
        try:
            signature = inspect.signature(obj_type)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            try:
                signature.bind(**kwargs)
            except TypeError as error:
                params = signature.parameters
                missing = [p for p, spec in params.items()
                           if spec.default is inspect.Parameter.empty and p not in kwargs
                           and spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]
                takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
                unknown = [] if takes_kwargs else [k for k in kwargs if k not in params]
                if missing:
                    raise self.error(f"missing required key {missing[0]!r} for {name}", f"{key}.{missing[0]}",
                                     f"add {missing[0]}=... to {key}") from None
                if unknown:
                    close = difflib.get_close_matches(unknown[0], list(params), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise self.error(f"{name} has no argument {unknown[0]!r}", f"{key}.{unknown[0]}",
                                     f"{hint}{name} takes: {', '.join(params)}") from None
                raise self.error(f"bad arguments for {name}: {error}", key) from None
        try:
            return obj_type(**kwargs)
        except ConfigError as error:
            if error.file is None and self.filename:
                raise ConfigError(error.message, file=self.filename, key=error.key, fix=error.fix) from error
            raise
        except (TypeError, ValueError) as error:
            raise self.error(f"bad value for {name}: {error}", key, f"check the values under {key}") from error

    # --- the runner's parts ---------------------------------------------------------
    def build_wrapped_model(self, cfg: Any, run_cfg: Mapping[str, Any], env_cfg: Mapping[str, Any]) -> torch.nn.Module:
        """The model on this process's device; in a distributed run, in DistributedDataParallel (with
        ``model_wrapper_cfg``/``find_unused_parameters``/``sync_bn`` as MMEngine reads them)."""
        model = self.build_model(cfg).to(dist.default_device())
        if not dist.is_distributed():
            return model
        if run_cfg.get("sync_bn") == "torch":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [dist.default_device().index] if torch.cuda.is_available() else None
        return CockpitDDP(model, device_ids=device_ids, **mmengine_keys.ddp_arguments(run_cfg, env_cfg))

    def build_model(self, cfg: Any) -> torch.nn.Module:
        model = self.build(cfg, "model")
        if not isinstance(model, torch.nn.Module):
            raise self.error(f"model must build a torch.nn.Module, got {type(model).__name__}", "model",
                             "make the model's type a subclass of cockpit.BaseModel")
        for method in ("train_step", "val_step", "test_step"):
            if not callable(getattr(model, method, None)):
                raise self.error(f"{type(model).__name__} has no {method}()", "model",
                                 "subclass cockpit.BaseModel, which provides train_step/val_step/test_step")
        return model

    def build_optim_wrapper(self, cfg: Any, model: torch.nn.Module) -> Any:
        if isinstance(cfg, OptimWrapper):
            return cfg
        if isinstance(cfg, torch.optim.Optimizer):
            return OptimWrapper(cfg)
        if not isinstance(cfg, Mapping):
            raise self.error(f"optim_wrapper must be a dict or an OptimWrapper, got {type(cfg).__name__}",
                             "optim_wrapper", "write optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01))")
        cfg = dict(cfg)
        wrapper_type = self.resolve(cfg.pop("type", "OptimWrapper"), "optim_wrapper")
        optimizer_cfg = cfg.pop("optimizer", None)
        if optimizer_cfg is None:
            raise self.error("missing required key 'optimizer'", "optim_wrapper.optimizer",
                             "add optimizer=dict(type='SGD', lr=0.01) to optim_wrapper")
        if isinstance(optimizer_cfg, torch.optim.Optimizer):
            optimizer = optimizer_cfg
        else:
            optimizer = self.build(optimizer_cfg, "optim_wrapper.optimizer", params=model.parameters())
        return self.call(wrapper_type, {"optimizer": optimizer, **cfg}, "optim_wrapper")

    def build_param_schedulers(self, cfg: Any, optim_wrapper: Any, epoch_length: int | None,
                               max_epochs: int | None = None, max_iters: int | None = None) -> list[Any]:
        """The schedulers; one without ``end`` runs to ``max_epochs``/``max_iters``, as in MMEngine."""
        if cfg is None:
            return []
        items = cfg if isinstance(cfg, (list, tuple)) else [cfg]
        schedulers = []
        for index, item in enumerate(items):
            key = f"param_scheduler[{index}]" if isinstance(cfg, (list, tuple)) else "param_scheduler"
            if isinstance(item, ParamScheduler):
                schedulers.append(item)
                continue
            if not isinstance(item, Mapping) or "type" not in item:
                raise self.error(f"each scheduler must be a dict with a type, got {item!r}", key,
                                 "write dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=1000)")
            item = dict(item)
            scheduler_cls = self.resolve(item.pop("type"), key)
            kwargs = {"optimizer": optim_wrapper.optimizer, "epoch_length": epoch_length,
                      "max_epochs": max_epochs, "max_iters": max_iters, **item}
            if scheduler_cls is torch.optim.lr_scheduler.ReduceLROnPlateau:
                raise self.error("torch's ReduceLROnPlateau needs the metric at every step", f"{key}.type",
                                 "use MMEngine's type='ReduceOnPlateauLR', monitor='<metric key>' (stepped after "
                                 "each validation)")
            try:
                if isinstance(scheduler_cls, type) and issubclass(scheduler_cls, ReduceOnPlateauLR):
                    schedulers.append(self.call(scheduler_cls, kwargs, key))
                else:
                    schedulers.append(ParamScheduler(scheduler_cls, **kwargs))
            except (TypeError, ValueError) as error:
                raise self.error(f"bad scheduler: {error}", key, f"check the arguments of {scheduler_cls.__name__}") from None
        return schedulers

    def build_dataloader(self, cfg: Any, key: str, seed: int) -> Any:
        """A DataLoader from ``dict(dataset=..., sampler=..., batch_size=..., ...)`` (or an existing loader)."""
        if not isinstance(cfg, Mapping):
            return cfg
        cfg = dict(cfg)
        if "dataset" not in cfg:
            raise self.error("missing required key 'dataset'", f"{key}.dataset", f"add dataset=dict(type=...) to {key}")
        if "batch_size" not in cfg:
            raise self.error("missing required key 'batch_size'", f"{key}.batch_size", f"add batch_size=N to {key}")
        dataset = self.build(cfg.pop("dataset"), f"{key}.dataset")
        batches = cfg.pop("num_batch_per_epoch", None)
        if batches is not None:
            # MMEngine's quick-debug key: only the first batches x batch_size x world_size samples.
            if not isinstance(batches, int) or batches < 1:
                raise self.error(f"num_batch_per_epoch must be a positive int, got {batches!r}",
                                 f"{key}.num_batch_per_epoch", "write num_batch_per_epoch=10, or remove it")
            count = min(len(dataset), batches * int(cfg["batch_size"]) * dist.get_world_size())
            dataset = torch.utils.data.Subset(dataset, range(count))
        sampler_cfg = cfg.pop("sampler", {"type": "DefaultSampler", "shuffle": key == "train_dataloader"})
        if isinstance(sampler_cfg, Mapping):
            sampler_cfg = dict(sampler_cfg)
            sampler_type = self.resolve(sampler_cfg.pop("type", "DefaultSampler"), f"{key}.sampler")
            if "seed" in inspect.signature(sampler_type).parameters:
                sampler_cfg.setdefault("seed", seed)
            if key != "train_dataloader" and "round_up" in inspect.signature(sampler_type).parameters:
                # Evaluation must see each sample once: no padding to equal shards across ranks.
                sampler_cfg.setdefault("round_up", False)
            sampler = self.call(sampler_type, {"dataset": dataset, **sampler_cfg}, f"{key}.sampler")
        else:
            sampler = sampler_cfg
        collate = cfg.pop("collate_fn", None)
        if isinstance(collate, Mapping):
            # MMEngine binds the other keys to the function: dict(type=fn, pad_value=0).
            collate = dict(collate)
            if "type" not in collate:
                raise self.error("missing required key 'type'", f"{key}.collate_fn",
                                 "write collate_fn=dict(type='default_collate') or dict(type=my_collate, ...)")
            function = self.resolve(collate.pop("type"), f"{key}.collate_fn")
            collate = functools.partial(function, **collate) if collate else function
        cfg.setdefault("num_workers", 0)
        if cfg.get("num_workers", 0) == 0:
            cfg.pop("persistent_workers", None)
        generator = torch.Generator()
        generator.manual_seed(seed)
        kwargs = {"dataset": dataset, "sampler": sampler, "collate_fn": collate, "generator": generator, **cfg}
        return self.call(DataLoader, kwargs, key)

    def build_evaluator(self, cfg: Any, key: str) -> Any:
        if isinstance(cfg, Evaluator):
            return cfg
        if isinstance(cfg, Mapping) and self._type_name(cfg) == "Evaluator":
            cfg = dict(cfg)
            cfg.pop("type")
            metrics = cfg.pop("metrics", [])
            return Evaluator([self.build(m, f"{key}.metrics") for m in (metrics if isinstance(metrics, list) else [metrics])])
        items = cfg if isinstance(cfg, (list, tuple)) else [cfg]
        metrics = []
        for index, item in enumerate(items):
            metric = self.build(item, f"{key}[{index}]" if isinstance(cfg, (list, tuple)) else key)
            if not isinstance(metric, BaseMetric):
                raise self.error(f"{type(metric).__name__} is not a metric", key, "metrics subclass cockpit.BaseMetric")
            metrics.append(metric)
        return Evaluator(metrics)

    def _type_name(self, cfg: Mapping) -> str | None:
        value = cfg.get("type")
        return value if isinstance(value, str) else getattr(value, "__name__", None)

    def build_train_loop(self, cfg: Any, runner: Any, dataloader: Any) -> Any:
        if not isinstance(cfg, Mapping):
            return cfg
        cfg = dict(cfg)
        if "type" in cfg:
            loop_type = self.resolve(cfg.pop("type"), "train_cfg")
            cfg.pop("by_epoch", None)
        else:
            by_epoch = cfg.pop("by_epoch", "max_iters" not in cfg)
            loop_type = EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop
        if loop_type is EpochBasedTrainLoop and "max_epochs" not in cfg:
            raise self.error("missing required key 'max_epochs'", "train_cfg.max_epochs",
                             "set train_cfg=dict(by_epoch=True, max_epochs=N), or by_epoch=False with max_iters=N")
        if loop_type is IterBasedTrainLoop and "max_iters" not in cfg:
            raise self.error("missing required key 'max_iters'", "train_cfg.max_iters",
                             "set train_cfg=dict(by_epoch=False, max_iters=N)")
        return self.call(loop_type, {"runner": runner, "dataloader": dataloader, **cfg}, "train_cfg")

    def build_eval_loop(self, cfg: Any, key: str, runner: Any, dataloader: Any, evaluator: Any) -> Any:
        if not isinstance(cfg, Mapping):
            return cfg
        cfg = dict(cfg)
        default = ValLoop if key == "val_cfg" else TestLoop
        loop_type = self.resolve(cfg.pop("type"), key) if "type" in cfg else default
        return self.call(loop_type, {"runner": runner, "dataloader": dataloader, "evaluator": evaluator, **cfg}, key)

    def build_hook(self, cfg: Any, key: str) -> Any:
        priority = None
        if isinstance(cfg, Mapping):
            cfg = dict(cfg)
            priority = cfg.pop("priority", None)
        hook = self.build(cfg, key)
        if not isinstance(hook, Hook):
            raise self.error(f"{type(hook).__name__} is not a Hook", key, "hooks subclass cockpit.Hook")
        return hook, priority
