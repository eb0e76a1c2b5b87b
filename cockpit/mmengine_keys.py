"""MMEngine's top-level config keys beyond the loops and hooks: what Cockpit does with each.

MMEngine acts on more of a config than its ``Runner`` arguments: ``env_cfg``,
``auto_scale_lr``, ``compile``, ``model_wrapper_cfg``, ``visualizer``... A config
written for MMEngine must behave the same here, or fail with an error that says
what to write instead; never be ignored. Names MMEngine does not act on
(``data_root``, ``train_pipeline``, ...) are plain config variables and stay allowed.
Cockpit's own top-level keys (``COCKPIT_KEYS``) are accepted here and checked where they are
built (``build.cockpit_hooks``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping
from typing import Any

import torch

from cockpit.errors import ConfigError

#: Keys MMEngine acts on that Cockpit does not implement, with what to write instead.
REFUSED: dict[str, str] = {
    "data_preprocessor": "Cockpit's BaseModel moves each batch to the device itself and has no data "
                         "preprocessor modules; remove data_preprocessor and override "
                         "BaseModel.data_preprocessor(data, training) to normalise or stack a batch",
    "activation_checkpointing": "remove it (Cockpit has no activation checkpointing switch; wrap the modules "
                                "with torch.utils.checkpoint in the model if you need the memory)",
    "efficient_conv_bn_eval": "remove it (Cockpit does not rewrite conv-bn pairs)",
}

#: Cockpit's own top-level keys (MMEngine has none of them): ``health_guard=dict(...)`` or None.
COCKPIT_KEYS = ("health_guard",)

#: MMEngine visualizer backends that map onto Cockpit's writers (the LoggerHook's ``backends``).
VIS_BACKENDS = {"LocalVisBackend": "json", "TensorboardVisBackend": "tensorboard"}


def check_top_level(cfg: Mapping[str, Any], file: str | None) -> None:
    """Refuse, with the fix, every top-level key MMEngine acts on that Cockpit would otherwise ignore."""
    for key in COCKPIT_KEYS:
        value = cfg.get(key)
        if value is not None and not isinstance(value, (bool, Mapping)):
            raise ConfigError(f"{key} must be a dict of options, True or None, got {value!r}", file=file, key=key,
                              fix=f"write {key}=dict(...) to configure it, or {key}=None to turn it off")
    for key, fix in REFUSED.items():
        if cfg.get(key) is not None:
            raise ConfigError(f"{key} is an MMEngine key that Cockpit does not support", file=file, key=key, fix=fix)
    sync_bn = cfg.get("sync_bn")
    if sync_bn not in (None, "torch"):
        raise ConfigError(f"sync_bn={sync_bn!r} is not supported", file=file, key="sync_bn",
                          fix="use sync_bn='torch' (torch.nn.SyncBatchNorm), or remove it")
    compile_cfg = cfg.get("compile")
    if compile_cfg is not None and not isinstance(compile_cfg, (bool, Mapping)):
        raise ConfigError(f"compile must be True/False or a dict of torch.compile arguments, got {compile_cfg!r}",
                          file=file, key="compile", fix="write compile=True or compile=dict(backend='inductor')")
    visualizer_backends(cfg.get("visualizer"), file)


def visualizer_backends(visualizer: Any, file: str | None = None) -> tuple[str, ...] | None:
    """The LoggerHook backends an MMEngine ``visualizer`` config stands for (None: no visualizer given)."""
    if visualizer is None:
        return None
    if not isinstance(visualizer, Mapping):
        raise ConfigError("visualizer must be a dict(type='Visualizer', vis_backends=[...])", file=file,
                          key="visualizer", fix="write visualizer=dict(type='Visualizer', "
                                                "vis_backends=[dict(type='LocalVisBackend')])")
    kind = visualizer.get("type", "Visualizer")
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind not in ("Visualizer", "UniversalVisualizer", "DetLocalVisualizer", "SegLocalVisualizer"):
        raise ConfigError(f"visualizer type {kind!r} is not supported: Cockpit logs scalars only", file=file,
                          key="visualizer.type", fix="use type='Visualizer' with LocalVisBackend or "
                                                     "TensorboardVisBackend, or remove visualizer")
    backends = []
    for index, backend in enumerate(visualizer.get("vis_backends") or [dict(type="LocalVisBackend")]):
        name = backend.get("type") if isinstance(backend, Mapping) else None
        name = name if isinstance(name, str) else getattr(name, "__name__", repr(name))
        if name not in VIS_BACKENDS:
            raise ConfigError(f"visualizer backend {name!r} is not supported", file=file,
                              key=f"visualizer.vis_backends[{index}]",
                              fix="use LocalVisBackend (JSON lines) or TensorboardVisBackend; Cockpit's own "
                                  "views show the run live")
        backends.append(VIS_BACKENDS[name])
    return tuple(dict.fromkeys(backends))


def setup_environment(env_cfg: Mapping[str, Any], distributed: bool) -> None:
    """``env_cfg``'s ``cudnn_benchmark``, ``mp_cfg`` and ``resource_limit``, as MMEngine applies them."""
    if env_cfg.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True
    mp_cfg = dict(env_cfg.get("mp_cfg") or {})
    method = mp_cfg.pop("mp_start_method", "fork")
    if method != multiprocessing.get_start_method(allow_none=True) and method in multiprocessing.get_all_start_methods():
        multiprocessing.set_start_method(method, force=True)
    threads = mp_cfg.pop("opencv_num_threads", 0)
    try:
        import cv2  # optional: only if the project uses OpenCV, as MMEngine
    except ImportError:
        cv2 = None
    if cv2 is not None:
        cv2.setNumThreads(int(threads))
    if mp_cfg:
        raise ConfigError(f"env_cfg.mp_cfg has unknown keys {sorted(mp_cfg)}", key="env_cfg.mp_cfg",
                          fix="use mp_start_method and opencv_num_threads")
    if distributed:
        # MMEngine's default: one OpenMP/MKL thread per process unless the user chose otherwise.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")
    if "resource_limit" in env_cfg:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(max(int(env_cfg["resource_limit"]), soft), hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def scale_lr(optim_wrapper: Any, auto_scale_lr: Mapping[str, Any] | None, batch_size: int | None,
             world_size: int, logger: logging.Logger) -> float:
    """MMEngine's linear scaling rule: lr x (batch size x world size) / ``base_batch_size``.

    Returns the factor applied (1.0 when ``auto_scale_lr`` is absent or not enabled).
    """
    if not auto_scale_lr or not auto_scale_lr.get("enable", False):
        return 1.0
    if "base_batch_size" not in auto_scale_lr:
        raise ConfigError("auto_scale_lr has no base_batch_size", key="auto_scale_lr.base_batch_size",
                          fix="write auto_scale_lr=dict(enable=True, base_batch_size=256)")
    if not batch_size:
        raise ConfigError("auto_scale_lr needs the train dataloader's batch_size", key="train_dataloader.batch_size",
                          fix="give train_dataloader a batch_size")
    base = auto_scale_lr["base_batch_size"]
    real = world_size * batch_size
    ratio = float(real) / float(base)
    logger.info(f"LR is set based on batch size of {base} and the current batch size is {real}. "
                f"Scaling the original LR by {ratio}.")
    for group in optim_wrapper.optimizer.param_groups:
        group["lr"] = group["lr"] * ratio
    return ratio


def ddp_arguments(cfg: Mapping[str, Any], env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``DistributedDataParallel`` arguments of ``model_wrapper_cfg`` / ``find_unused_parameters``."""
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    kind = wrapper.pop("type", "MMDistributedDataParallel")
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind not in ("MMDistributedDataParallel", "DistributedDataParallel"):
        raise ConfigError(f"model_wrapper_cfg type {kind!r} is not supported", key="model_wrapper_cfg.type",
                          fix="Cockpit wraps the model in torch's DistributedDataParallel: use "
                              "type='MMDistributedDataParallel' with DDP arguments, or remove model_wrapper_cfg")
    arguments = dict(env_cfg.get("ddp_cfg") or {})
    if "find_unused_parameters" in cfg and "model_wrapper_cfg" not in cfg:
        arguments["find_unused_parameters"] = bool(cfg["find_unused_parameters"])
    if "model_wrapper_cfg" not in cfg and "ddp_cfg" not in env_cfg:
        arguments.setdefault("broadcast_buffers", False)  # MMEngine's default wrapper
    arguments.update(wrapper)
    return arguments


def compile_model(model: torch.nn.Module, compile_cfg: bool | Mapping[str, Any] | None,
                  logger: logging.Logger) -> None:
    """``compile=True`` or ``compile=dict(...)``: ``torch.compile`` the model's ``train_step``, as MMEngine."""
    if not compile_cfg:
        return
    options = {} if compile_cfg is True else dict(compile_cfg)
    model.train_step = torch.compile(model.train_step, **options)
    model._cockpit_compiled = True  # once per model, however often train() is called
    logger.info('Model has been "compiled". The first few iterations will be slow, please be patient.')


def with_backends(default_hooks: Mapping[str, Any] | None, backends: tuple[str, ...] | None) -> dict[str, Any]:
    """``default_hooks`` with the logger writing to ``backends`` (from ``visualizer``), unless it names its own."""
    hooks = dict(default_hooks or {})
    if backends is None:
        return hooks
    logger = hooks.get("logger", {"type": "LoggerHook"})
    if isinstance(logger, Mapping) and "backends" not in logger:
        hooks["logger"] = {**logger, "backends": backends}
    return hooks


class ScalarVisualizer:
    """``runner.visualizer``, for hook authors who call MMEngine's: scalars go into the run's hub
    (plotted by every view; written by the LoggerHook's backends). Images are not supported.

    Args:
        hub: the run's message hub.
    """

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.hub.update_scalar(name, value, step)

    def add_scalars(self, scalar_dict: Mapping[str, Any], step: int = 0, file_path: str | None = None,
                    **kwargs: Any) -> None:
        for name, value in scalar_dict.items():
            self.hub.update_scalar(name, value, step)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("add_") or name in ("draw_featmap", "set_image", "get_image"):
            raise NotImplementedError(f"visualizer.{name}: Cockpit's visualizer records scalars only "
                                      "(add_scalar, add_scalars); draw images in your own hook")
        raise AttributeError(name)
