"""The ``Runner``: MMEngine's keys and lifecycle, composed from parts that each own one concept.

``Runner.from_cfg(cfg)`` checks the keys, seeds, builds the model and registers the hooks;
dataloaders and loops are built (by ``cockpit.build``) when first needed. It composes:

- ``HookDispatcher`` (hooks/dispatch.py): the hooks, in priority order, per stage;
- ``Checkpointer`` (checkpointer.py): what goes into checkpoints, saving, rotation, resume;
- ``Steering`` (steering.py): the command queue, pause/stop/save flags, signals, agreement;
- ``RunFolder`` and the logger (rundir.py);
- the ``ChannelServer`` (channel/), when asked to serve views.

Hooks, loops, commands and the channel see the runner through ``interface.RunContext``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from cockpit import build, dist, mmengine_keys
from cockpit.checkpointer import Checkpointer
from cockpit.config import Config
from cockpit.events import Status
from cockpit.hooks.base import Hook
from cockpit.hooks.dispatch import HookDispatcher
from cockpit.hub import MessageHub
from cockpit.log_processor import LogProcessor
from cockpit.loops import EpochBasedTrainLoop
from cockpit.rundir import RunFolder, make_logger, unique_timestamp
from cockpit.seeding import seed_run
from cockpit.steering import Steering
from cockpit.version import __version__

__all__ = ["Runner", "__version__"]


class Runner:
    """Trains, validates and tests a model, calling hooks at every stage.

    Keys are MMEngine's; see the README for each. Objects or config dicts are accepted for
    every part. Beyond MMEngine's: ``log_to_console``, ``trust_checkpoints`` (load checkpoints
    that need arbitrary pickles), ``serve`` (serve views: True, or ``'HOST:PORT'`` for TCP) and
    ``timestamp`` (the run folder's name).
    """

    def __init__(self, model: torch.nn.Module | Mapping, *, work_dir: str | os.PathLike = "work_dirs",
                 experiment_name: str | None = None, train_dataloader: Any = None, optim_wrapper: Any = None,
                 param_scheduler: Any = None, train_cfg: Mapping | None = None, val_dataloader: Any = None,
                 val_evaluator: Any = None, val_cfg: Mapping | None = None, test_dataloader: Any = None,
                 test_evaluator: Any = None, test_cfg: Mapping | None = None,
                 default_hooks: Mapping[str, Any] | None = None, custom_hooks: list[Any] | None = None,
                 load_from: str | None = None, resume: bool | str = False, launcher: str = "none",
                 env_cfg: Mapping | None = None, log_processor: Mapping | None = None, log_level: str = "INFO",
                 randomness: Mapping | None = None, auto_scale_lr: Mapping | None = None,
                 visualizer: Mapping | None = None, default_scope: str | None = None, cfg: Mapping | None = None,
                 log_to_console: bool = True, trust_checkpoints: bool = False, serve: bool | str = False,
                 timestamp: str | None = None, health_guard: Mapping | bool | None = True) -> None:
        self.cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(cfg or {})
        self._builder = build.Builder(self.cfg.filename, default_scope)
        mmengine_keys.check_top_level(self.cfg, self.cfg.filename)
        build.check_runner_keys(dict(
            train_dataloader=train_dataloader, train_cfg=train_cfg, optim_wrapper=optim_wrapper,
            param_scheduler=param_scheduler, val_dataloader=val_dataloader, val_cfg=val_cfg,
            val_evaluator=val_evaluator, test_dataloader=test_dataloader, test_cfg=test_cfg,
            test_evaluator=test_evaluator, resume=resume, load_from=load_from, launcher=launcher), self.cfg.filename)
        self.launcher, self.env_cfg, self.serve = launcher, dict(env_cfg or {}), serve
        mmengine_keys.setup_environment(self.env_cfg, distributed=launcher != "none")
        if launcher != "none":
            dist_cfg = dict(self.env_cfg.get("dist_cfg", {}))
            dist.init_distributed(launcher, backend=dist_cfg.get("backend"),
                                  timeout_minutes=float(dist_cfg.get("timeout_minutes", 30)))

        work_dir = Path(work_dir).resolve()
        # Every rank must agree on the run folder: rank 0's choice wins.
        timestamp = dist.broadcast_object(timestamp or (unique_timestamp(work_dir) if self.is_main_process else None))
        self.folder = RunFolder(work_dir, timestamp, self.cfg, main=self.is_main_process)
        if experiment_name is None:
            stem = Path(self.cfg.filename).stem if self.cfg.filename else None
            experiment_name = f"{stem}_{timestamp}" if stem else timestamp
        self._experiment_name = experiment_name

        self._seed, self._deterministic = seed_run(randomness, dist.get_rank())

        self.log_processor = LogProcessor.build(log_processor)
        self.message_hub = MessageHub(experiment_name, window_size=int(self.log_processor.window_size))
        self.visualizer = mmengine_keys.ScalarVisualizer(self.message_hub)
        self.log_level = log_level
        self.logger = make_logger(f"cockpit.run.{experiment_name}.{id(self):x}", self.message_hub, log_level,
                                  to_console=log_to_console and self.is_main_process)
        self.trust_checkpoints = trust_checkpoints

        self.model = self._builder.build_wrapped_model(model, self.cfg, self.env_cfg)
        self.optim_wrapper = (self._builder.build_optim_wrapper(optim_wrapper, self.model)
                              if optim_wrapper is not None else None)
        self.param_schedulers: list[Any] = []
        self.auto_scale_lr = auto_scale_lr
        self._parts = {"train": (train_dataloader, param_scheduler, train_cfg),
                       "val": (val_dataloader, val_evaluator, val_cfg),
                       "test": (test_dataloader, test_evaluator, test_cfg)}
        self._loops: dict[str, Any] = {}
        self._load_from, self._resume, self._has_loaded = load_from, resume, False
        self.resumed_from: str | None = None
        self._in_training = False
        self.started = False

        self.dispatcher = HookDispatcher(self.message_hub)
        self.checkpointer = Checkpointer(self, self.dispatcher, trusted=trust_checkpoints)
        # Switchable only to measure its cost: without it, commands never reach a distributed run.
        self.steering = Steering(self, agreement=bool(self.env_cfg.get("command_agreement", True)))
        backends = mmengine_keys.visualizer_backends(visualizer, self.cfg.filename)
        self.register_hooks(mmengine_keys.with_backends(default_hooks, backends), custom_hooks)
        # Cockpit's own hooks (not MMEngine's): after the config's, their priorities place them.
        for hook in build.cockpit_hooks({"health_guard": health_guard}, self.cfg.filename):
            self.register_hook(hook, key="health_guard")

    @classmethod
    def from_cfg(cls, cfg: Mapping | str | os.PathLike, **overrides: Any) -> Runner:
        """Build a runner from a ``Config`` (or a path to a config file)."""
        if isinstance(cfg, (str, os.PathLike)):
            cfg = Config.fromfile(cfg)
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        return cls(cfg=cfg, **{**build.runner_arguments(cfg), **overrides})

    # --- what the run is (MMEngine's names) ------------------------------------------------
    work_dir = property(lambda self: self.folder.work_dir, doc="Where checkpoints and run folders go.")
    log_dir = property(lambda self: self.folder.path, doc="This run's folder, ``work_dir/<timestamp>``.")
    timestamp = property(lambda self: self.folder.timestamp)
    experiment_name = property(lambda self: self._experiment_name)
    seed = property(lambda self: self._seed)
    deterministic = property(lambda self: self._deterministic)
    rank = property(lambda self: dist.get_rank())
    world_size = property(lambda self: dist.get_world_size())
    is_main_process = property(lambda self: dist.get_rank() == 0)
    in_training = property(lambda self: self._in_training, doc="True inside ``train()``.")
    distributed = property(lambda self: dist.is_distributed())
    model_name = property(lambda self: type(getattr(self.model, "module", self.model)).__name__)
    val_interval = property(lambda self: self.train_loop.val_interval)
    hooks = property(lambda self: list(self.dispatcher.hooks), doc="The hooks, in priority order (MMEngine's).")
    control = property(lambda self: self.steering.control, doc="The command queue.")
    stop_reason = property(lambda self: self.steering.stop_reason, doc="Why the run stopped early, if it did.")

    epoch = property(lambda self: self._loops["train"].epoch if "train" in self._loops else 0)
    iter = property(lambda self: self._loops["train"].iter if "train" in self._loops else 0)

    max_epochs = property(lambda self: self.train_loop.max_epochs)
    max_iters = property(lambda self: self.train_loop.max_iters)
    is_epoch_based = property(lambda self: isinstance(self._loops.get("train"), EpochBasedTrainLoop))

    def position(self) -> dict[str, int]:
        """Where a checkpoint taken now resumes (epochs and iterations done, batch in the epoch)."""
        loop = self._loops.get("train")
        return loop.position() if loop is not None else {"epoch": 0, "iter": 0, "batch_in_epoch": 0}

    train_batch_size = property(lambda self: getattr(getattr(self._loops.get("train"), "dataloader", None),
                                                     "batch_size", None))

    @property
    def stopping(self) -> bool:
        loop = self._loops.get("train")
        return loop is not None and loop.stop_training

    # --- parts, built on first use ------------------------------------------------------------
    @property
    def train_loop(self) -> Any:
        """The train loop, built on first use (with its dataloader and schedulers)."""
        if "train" not in self._loops:
            dataloader, scheduler_cfg, loop_cfg = self._parts["train"]
            if loop_cfg is None:
                raise RuntimeError("this runner has no training: give train_dataloader, train_cfg and optim_wrapper")
            dataloader = self._builder.build_dataloader(dataloader, "train_dataloader", self.seed)
            try:
                epoch_length = len(dataloader)
            except TypeError:
                epoch_length = None
            # The loop first, as in MMEngine: a scheduler without ``end`` runs to its maximum; the lr is
            # scaled (auto_scale_lr) before the schedulers record it as their base.
            loop = self._loops["train"] = self._builder.build_train_loop(loop_cfg, self, dataloader)
            mmengine_keys.scale_lr(self.optim_wrapper, self.auto_scale_lr, getattr(dataloader, "batch_size", None),
                                   self.world_size, self.logger)
            self.param_schedulers = self._builder.build_param_schedulers(
                scheduler_cfg, self.optim_wrapper, epoch_length, loop.max_epochs, loop.max_iters)
            self.optim_wrapper.initialize_count_status(loop.iter, loop.max_iters)
        return self._loops["train"]

    def _eval_loop(self, mode: str) -> Any:
        if mode not in self._loops and self._parts[mode][0] is not None:
            dataloader, evaluator, loop_cfg = self._parts[mode]
            dataloader = self._builder.build_dataloader(dataloader, f"{mode}_dataloader", self.seed)
            evaluator = self._builder.build_evaluator(evaluator, f"{mode}_evaluator")
            self._loops[mode] = self._builder.build_eval_loop(loop_cfg, f"{mode}_cfg", self, dataloader, evaluator)
        return self._loops.get(mode)

    val_loop = property(lambda self: self._eval_loop("val"), doc="The validation loop, or None.")
    test_loop = property(lambda self: self._eval_loop("test"), doc="The test loop, or None.")
    train_dataloader = property(lambda self: self.train_loop.dataloader)
    val_dataloader = property(lambda self: getattr(self.val_loop, "dataloader", None))
    test_dataloader = property(lambda self: getattr(self.test_loop, "dataloader", None))
    val_evaluator = property(lambda self: getattr(self.val_loop, "evaluator", None))
    test_evaluator = property(lambda self: getattr(self.test_loop, "evaluator", None))

    # --- hooks --------------------------------------------------------------------------------
    def register_hook(self, hook: Hook | Mapping, priority: int | str | None = None, key: str = "custom_hooks") -> None:
        """Add a hook (an instance or a config dict); ``priority`` overrides the hook's own."""
        if isinstance(hook, Mapping):
            hook, cfg_priority = self._builder.build_hook(hook, key)
            priority = priority if priority is not None else cfg_priority
        self.dispatcher.register(hook, priority)
        for command in hook.commands():
            self.steering.control.add(command)

    def register_hooks(self, default_hooks: Mapping | None = None, custom_hooks: list | None = None) -> None:
        """MMEngine's default hooks merged with ``default_hooks``, then ``custom_hooks``."""
        for name, hook in build.merged_default_hooks(default_hooks).items():
            self.register_hook(hook, key=f"default_hooks.{name}")
        for index, hook in enumerate(custom_hooks or []):
            self.register_hook(hook, key=f"custom_hooks[{index}]")

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call every hook that overrides stage ``fn_name``, in priority order."""
        self.dispatcher.call(self, fn_name, **kwargs)

    def hooks_info(self) -> str:
        """The hook order per stage, in MMEngine's layout."""
        return self.dispatcher.info()

    get_hooks_info = hooks_info

    # --- running --------------------------------------------------------------------------------
    def train(self) -> torch.nn.Module:
        """Train to the end (or until stopped); returns the model."""
        loop = self.train_loop
        self.val_loop  # noqa: B018 - built now, so config errors surface before training
        if not getattr(self.model, "_cockpit_compiled", False):
            mmengine_keys.compile_model(self.model, self.cfg.get("compile"), self.logger)
        self._in_training = True
        try:
            return self._run(loop.run, init_weights=True)
        finally:
            self._in_training = False

    def val(self) -> dict[str, Any]:
        """Run the validation loop once; returns the metrics."""
        if self.val_loop is None:
            raise RuntimeError("this runner has no validation: give val_dataloader, val_evaluator and val_cfg")
        return self._run(self.val_loop.run)

    def test(self) -> dict[str, Any]:
        """Run the test loop once; returns the metrics."""
        if self.test_loop is None:
            raise RuntimeError("this runner has no test: give test_dataloader, test_evaluator and test_cfg")
        return self._run(self.test_loop.run)

    def _run(self, body: Any, init_weights: bool = False) -> Any:
        hub = self.message_hub
        self.folder.prepare()
        self.steering.open()
        with hub.activated(), self.steering.signal_handlers(), \
                self.folder.logging_to_file(self.logger, lambda: f"Hooks will be executed in the following "
                                                                f"order:\n{self.hooks_info()}"), \
                self._serving(), _frozen_gc(), self._closing_control():
            hub.update_info("pid", os.getpid())
            hub.update_info("started", time.time())
            hub.set_status(Status.RUNNING)
            try:
                # MMEngine's order: before_run, the model's init_weights() (training only; a
                # checkpoint loaded next overwrites what it set), then load or resume, so a hook
                # that builds something in before_run can fill it in after_load_checkpoint.
                self.call_hook("before_run")
                if init_weights:
                    self._init_model_weights()
                self.load_or_resume()
                dist.barrier()  # every rank starts from the same state
                # The model, data and torch's own objects live as long as the run: moving them out
                # of the collector's sight keeps full collections from walking them again and again.
                # Only the young generations are collected first: a full collection walks every
                # object torch made at import (50-200 ms a run); old garbage frozen with the rest
                # goes back to the collector when the run ends (``_frozen_gc``).
                gc.collect(1)
                gc.freeze()
                self.started = True
                result = body()
            except BaseException as error:
                trace = "".join(traceback.format_exception(error))
                hub.update_info("error_traceback", trace)
                self.logger.error(f"run failed: {type(error).__name__}: {error}\n{trace.rstrip()}")
                hub.set_status(Status.FAILED, f"{type(error).__name__}: {error}")
                # Cleanup (closing writers) must run on every exit path, but must not hide the error.
                for name, cleanup_error in self.dispatcher.call_all(self, "after_run"):
                    self.logger.error(f"{name}.after_run failed during cleanup: "
                                      f"{type(cleanup_error).__name__}: {cleanup_error}")
                raise
            errors = self.dispatcher.call_all(self, "after_run")
            if errors:
                name, error = errors[0]
                hub.set_status(Status.FAILED, f"{name}.after_run: {type(error).__name__}: {error}")
                raise error
            pending_stop = self.steering.stop_requested  # a stop that came during val() or test() alone
            stopped = self.stopping or pending_stop is not None
            hub.set_status(Status.STOPPED if stopped else Status.FINISHED, self.stop_reason or pending_stop or "")
            return result

    @contextlib.contextmanager
    def _closing_control(self) -> Iterator[None]:
        """When the run ends, commands still queued get an outcome (rejected) instead of none."""
        try:
            yield
        finally:
            self.steering.control.close("the run ended before the command could be applied")

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        """Serve the hub and the command queue to views while a loop runs (rank 0, if asked)."""
        if not self.serve or not self.is_main_process:
            yield
            return
        from cockpit.channel.server import ChannelServer
        from cockpit.system_monitor import SystemMonitor

        listen = self.serve if isinstance(self.serve, str) else None
        # The system panel's samples: only views read them, so only a served run takes them, in a
        # thread of their own (nothing per step); a view attaching late gets the last minute.
        with ChannelServer(self, self.steering.control, listen=listen), SystemMonitor(self.message_hub):
            self.logger.info(f"serving views: cockpit attach {self.log_dir}")
            yield

    # --- steering (MMEngine-style entry points; the Steering owns the flags) --------------------
    def safe_point(self) -> None:
        """Between iterations and epochs, in the training thread: apply commands, serve requests."""
        self.steering.safe_point()

    def request_stop(self, reason: str = "requested", save: bool = True) -> None:
        self.steering.request_stop(reason, save)

    def stop(self) -> None:
        """End the train loop after the current iteration (no checkpoint; see ``request_stop``)."""
        loop = self._loops.get("train")
        if loop is not None:
            loop.stop_training = True

    def save_now(self, reason: str = "requested") -> Path:
        """Save a resumable checkpoint of the current position now."""
        return self.checkpointer.save_now(reason)

    # --- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, out_dir: str | os.PathLike, filename: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: dict | None = None) -> Path:
        """Write a full checkpoint atomically to ``out_dir/filename`` and return its path."""
        return self.checkpointer.write(filename, save_optimizer, save_param_scheduler, meta, out_dir=out_dir)

    def load_checkpoint(self, filename: str | os.PathLike, strict: bool = False,
                        revise_keys: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """Load model weights only (``load_from``), stripping a ``module.`` prefix."""
        checkpoint = self.checkpointer.load_weights(filename, strict, revise_keys)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        return checkpoint

    def resume(self, filename: str | os.PathLike, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Restore a full training state: weights, optimizer, schedulers, hub, hooks, RNG, position."""
        checkpoint = self.checkpointer.restore(filename, resume_optimizer, resume_param_scheduler, checkpoint)
        loop = self.train_loop
        self.resumed_from = str(filename)
        self.message_hub.update_info("resumed_from", str(filename))
        self.message_hub.add_marker("resume", loop.iter, str(filename))
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        self.logger.info(f"resumed from {filename}: epoch {loop.epoch}, iter {loop.iter}")
        return checkpoint

    def load_or_resume(self) -> None:
        """Resume or load weights as ``resume`` and ``load_from`` say (once)."""
        if self._has_loaded or (not self._resume and self._load_from is None):
            return
        if isinstance(self._resume, str):
            self.resume(self._resume)
        elif self._resume and self._load_from is not None:
            self.resume(self._load_from)
        elif self._resume:
            self.checkpointer.auto_resume(self.resume)
        else:
            self.load_checkpoint(self._load_from)
        self._has_loaded = True

    def _init_model_weights(self) -> None:
        model = getattr(self.model, "module", self.model)
        if callable(getattr(model, "init_weights", None)):
            model.init_weights()
            dist.broadcast_tensors(list(model.state_dict().values()))  # every rank starts alike

    def __repr__(self) -> str:
        return f"Runner({self.experiment_name!r}, work_dir={str(self.work_dir)!r})"


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Give the objects frozen during a run back to the collector when it ends."""
    try:
        yield
    finally:
        gc.unfreeze()
