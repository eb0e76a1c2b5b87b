"""The ``Runner``: MMEngine's keys and lifecycle, over built parts.

``Runner.from_cfg(cfg)`` (or ``Runner(...)`` with the same keys) sets the seed,
builds the model and registers the hooks; the dataloaders and loops are built
when ``train()``, ``val()`` or ``test()`` first needs them, all through
``cockpit.build``. Each run writes into ``work_dir/<timestamp>/`` (config dump,
log file, scalars), checkpoints go to ``work_dir`` itself.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cockpit import checkpoint as ckpt
from cockpit.build import Builder
from cockpit.config import Config, ConfigDict
from cockpit.control import ControlQueue
from cockpit.dist import (
    all_reduce_max,
    barrier,
    broadcast_object,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
)
from cockpit.errors import CheckpointError, ConfigError
from cockpit.hooks.base import Hook
from cockpit.hooks.dispatch import HookDispatcher
from cockpit.hub import MessageHub
from cockpit.loops import EpochBasedTrainLoop

__version__ = "0.1.0"

_RUNNER_KEYS = (
    "model", "work_dir", "experiment_name", "train_dataloader", "optim_wrapper", "param_scheduler", "train_cfg",
    "val_dataloader", "val_evaluator", "val_cfg", "test_dataloader", "test_evaluator", "test_cfg",
    "default_hooks", "custom_hooks", "load_from", "resume", "launcher", "env_cfg", "log_processor",
    "log_level", "randomness",
)

DEFAULT_HOOKS: dict[str, dict] = {
    "runtime_info": {"type": "RuntimeInfoHook"},
    "timer": {"type": "IterTimerHook"},
    "sampler_seed": {"type": "DistSamplerSeedHook"},
    "logger": {"type": "LoggerHook"},
    "param_scheduler": {"type": "ParamSchedulerHook"},
    "checkpoint": {"type": "CheckpointHook", "interval": 1},
}


class _HubLogHandler(logging.Handler):
    """Copies every log record into the hub, so views show the run's log."""

    def __init__(self, hub: MessageHub) -> None:
        super().__init__()
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        self.hub.log(record.levelname, record.getMessage(), record.created)


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally make torch deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


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


class Runner:
    """Trains, validates and tests a model, calling hooks at every stage.

    Keys are MMEngine's; see the README for each. Objects or config dicts are
    accepted for every part.
    """

    def __init__(
        self,
        model: torch.nn.Module | Mapping,
        *,
        work_dir: str | os.PathLike = "work_dirs",
        experiment_name: str | None = None,
        train_dataloader: Any = None,
        optim_wrapper: Any = None,
        param_scheduler: Any = None,
        train_cfg: Mapping | None = None,
        val_dataloader: Any = None,
        val_evaluator: Any = None,
        val_cfg: Mapping | None = None,
        test_dataloader: Any = None,
        test_evaluator: Any = None,
        test_cfg: Mapping | None = None,
        default_hooks: Mapping[str, Any] | None = None,
        custom_hooks: list[Any] | None = None,
        load_from: str | None = None,
        resume: bool | str = False,
        launcher: str = "none",
        env_cfg: Mapping | None = None,
        log_processor: Mapping | None = None,
        log_level: str = "INFO",
        randomness: Mapping | None = None,
        cfg: Mapping | None = None,
        log_to_console: bool = True,
        trust_checkpoints: bool = False,
        serve: bool | str = False,
        timestamp: str | None = None,
    ) -> None:
        self.cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(cfg or {})
        self._builder = Builder(self.cfg.filename)
        file = self.cfg.filename
        _all_or_none(("train_dataloader", "train_cfg", "optim_wrapper"), (train_dataloader, train_cfg, optim_wrapper),
                     file)
        if param_scheduler is not None and optim_wrapper is None:
            raise ConfigError("param_scheduler should be None when optim_wrapper is None", file=file,
                              key="param_scheduler",
                              fix="add optim_wrapper (and train_dataloader, train_cfg) or remove param_scheduler")
        _all_or_none(("val_dataloader", "val_cfg", "val_evaluator"), (val_dataloader, val_cfg, val_evaluator), file)
        _all_or_none(("test_dataloader", "test_cfg", "test_evaluator"), (test_dataloader, test_cfg, test_evaluator),
                     file)
        if isinstance(resume, str) and load_from is not None:
            raise ConfigError("If resume is a str, load_from should be None.", file=file, key="load_from",
                              fix="use resume='path' to resume, or load_from='path' with resume=False for weights")
        if launcher not in ("none", "pytorch", "slurm"):
            raise ConfigError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}", file=file,
                              key="launcher",
                              fix="use launcher='pytorch' under torchrun")
        self.launcher = launcher
        self.env_cfg = dict(env_cfg or {})
        self._setup_distributed()

        self._work_dir = Path(work_dir).resolve()
        # Every rank must agree on the run folder: rank 0's choice wins.
        self._timestamp = broadcast_object(timestamp or (self._unique_timestamp() if is_main_process() else None))
        self.serve = serve
        filename = self.cfg.filename
        if experiment_name is None:
            stem = Path(filename).stem if filename else None
            experiment_name = f"{stem}_{self._timestamp}" if stem else self._timestamp
        self._experiment_name = experiment_name

        randomness = dict(randomness or {})
        seed = randomness.get("seed")
        self._seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self._deterministic = bool(randomness.get("deterministic", False))
        if randomness.get("diff_rank_seed", False):
            self._seed += get_rank()
        set_random_seed(self._seed, self._deterministic)

        window_size = int((log_processor or {}).get("window_size", 10))
        self.message_hub = MessageHub(experiment_name, window_size=window_size)
        self.log_level = log_level
        self.log_to_console = log_to_console
        self.logger = self._make_logger()
        self.trust_checkpoints = trust_checkpoints

        model = self._builder.build_model(model).to(self._device())
        if is_distributed():
            from cockpit.wrappers import CockpitDDP

            device = self._device()
            model = CockpitDDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                               **self.env_cfg.get("ddp_cfg", {}))
        self.model = model

        self._train_dataloader = train_dataloader
        self._train_cfg = train_cfg
        self.optim_wrapper = (self._builder.build_optim_wrapper(optim_wrapper, self.model)
                              if optim_wrapper is not None else None)
        self._param_scheduler_cfg = param_scheduler
        self.param_schedulers: list[Any] = []
        self._val_parts = (val_dataloader, val_evaluator, val_cfg)
        self._test_parts = (test_dataloader, test_evaluator, test_cfg)
        self._train_loop: Any = None
        self._val_loop: Any = None
        self._test_loop: Any = None
        self._load_from = load_from
        self._resume = resume
        self._has_loaded = False
        self.resumed_from: str | None = None

        self.hooks = HookDispatcher(self.message_hub)
        self.control = ControlQueue(self)
        self.register_hooks(default_hooks, custom_hooks)
        self._run_dir_ready = False
        self._in_training = False
        self.started = False
        # Requests served at the next safe point (set from signal handlers or other threads).
        self._save_requested: str | None = None
        self._stop_requested: str | None = None
        self._stop_saves = True
        self.stop_reason: str | None = None
        # Distributed runs agree on commands every few iterations (about every 100 ms).
        self._sync_countdown = 1
        self._sync_clock = (time.perf_counter(), 0)
        self._signal_note: str | None = None
        # Switchable only to measure its cost: without it, commands never reach a distributed run.
        self.agreement = bool(self.env_cfg.get("command_agreement", True))

    @classmethod
    def from_cfg(cls, cfg: Mapping | str | os.PathLike, **overrides: Any) -> Runner:
        """Build a runner from a ``Config`` (or a path to a config file)."""
        if isinstance(cfg, (str, os.PathLike)):
            cfg = Config.fromfile(cfg)
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        if "model" not in cfg:
            raise ConfigError("missing required key 'model'", file=cfg.filename, key="model",
                              fix="add model = dict(type=MyModel, ...) to the config")
        kwargs = {key: cfg[key] for key in _RUNNER_KEYS if key in cfg}
        if "work_dir" not in kwargs:
            stem = Path(cfg.filename).stem if cfg.filename else "run"
            kwargs["work_dir"] = str(Path("work_dirs") / stem)
        kwargs.update(overrides)
        return cls(cfg=cfg, **_unwrap_config(kwargs))

    # --- properties (MMEngine's names) -----------------------------------------------
    @property
    def work_dir(self) -> Path:
        return self._work_dir

    @property
    def log_dir(self) -> Path:
        return self._work_dir / self._timestamp

    @property
    def timestamp(self) -> str:
        return self._timestamp

    @property
    def experiment_name(self) -> str:
        return self._experiment_name

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def deterministic(self) -> bool:
        return self._deterministic

    @property
    def rank(self) -> int:
        return get_rank()

    @property
    def world_size(self) -> int:
        return get_world_size()

    @property
    def is_main_process(self) -> bool:
        return is_main_process()

    @property
    def epoch(self) -> int:
        return self._train_loop.epoch if self._train_loop is not None else 0

    @property
    def iter(self) -> int:
        return self._train_loop.iter if self._train_loop is not None else 0

    @property
    def max_epochs(self) -> int:
        return self.train_loop.max_epochs

    @property
    def max_iters(self) -> int:
        return self.train_loop.max_iters

    @property
    def is_epoch_based(self) -> bool:
        return isinstance(self._train_loop, EpochBasedTrainLoop)

    @property
    def train_loop(self) -> Any:
        """The train loop, built on first use."""
        if self._train_loop is None:
            if self._train_cfg is None:
                raise RuntimeError("this runner has no training: give train_dataloader, train_cfg and optim_wrapper")
            self._train_dataloader = self._builder.build_dataloader(self._train_dataloader, "train_dataloader",
                                                                    self.seed)
            try:
                epoch_length = len(self._train_dataloader)
            except TypeError:
                epoch_length = None
            self.param_schedulers = self._builder.build_param_schedulers(self._param_scheduler_cfg,
                                                                         self.optim_wrapper, epoch_length)
            self._train_loop = self._builder.build_train_loop(self._train_cfg, self, self._train_dataloader)
            self.optim_wrapper.initialize_count_status(self._train_loop.iter, self._train_loop.max_iters)
        return self._train_loop

    @property
    def val_loop(self) -> Any:
        """The validation loop (None without validation), built on first use."""
        if self._val_loop is None and self._val_parts[0] is not None:
            self._val_loop = self._build_eval_loop(self._val_parts, "val")
        return self._val_loop

    @property
    def test_loop(self) -> Any:
        if self._test_loop is None and self._test_parts[0] is not None:
            self._test_loop = self._build_eval_loop(self._test_parts, "test")
        return self._test_loop

    def _build_eval_loop(self, parts: tuple, mode: str) -> Any:
        dataloader, evaluator, loop_cfg = parts
        dataloader = self._builder.build_dataloader(dataloader, f"{mode}_dataloader", self.seed)
        evaluator = self._builder.build_evaluator(evaluator, f"{mode}_evaluator")
        return self._builder.build_eval_loop(loop_cfg, f"{mode}_cfg", self, dataloader, evaluator)

    @property
    def train_dataloader(self) -> Any:
        return self.train_loop.dataloader

    @property
    def val_dataloader(self) -> Any:
        return self.val_loop.dataloader if self.val_loop is not None else None

    @property
    def test_dataloader(self) -> Any:
        return self.test_loop.dataloader if self.test_loop is not None else None

    @property
    def val_evaluator(self) -> Any:
        return self.val_loop.evaluator if self.val_loop is not None else None

    @property
    def test_evaluator(self) -> Any:
        return self.test_loop.evaluator if self.test_loop is not None else None

    # --- hooks --------------------------------------------------------------------
    def register_hook(self, hook: Hook | Mapping, priority: int | str | None = None) -> None:
        """Add a hook (an instance or a config dict); ``priority`` overrides the hook's own."""
        if isinstance(hook, Mapping):
            hook, cfg_priority = self._builder.build_hook(hook, "custom_hooks")
            priority = priority if priority is not None else cfg_priority
        self._add_hook(hook, priority)

    def _add_hook(self, hook: Hook, priority: int | str | None) -> None:
        self.hooks.register(hook, priority)
        for command in hook.commands():
            self.control.add(command)

    def register_default_hooks(self, hooks: Mapping[str, Any] | None = None) -> None:
        """MMEngine's default hooks, merged with ``hooks`` (a None value removes one)."""
        merged: dict[str, Any] = dict(DEFAULT_HOOKS)
        for name, hook in (hooks or {}).items():
            if hook is None:
                merged.pop(name, None)
            else:
                merged[name] = hook
        for name, hook in merged.items():
            if isinstance(hook, Mapping):
                built, priority = self._builder.build_hook(hook, f"default_hooks.{name}")
                self._add_hook(built, priority)
            else:
                self.register_hook(hook)

    def register_custom_hooks(self, hooks: list[Any]) -> None:
        for index, hook in enumerate(hooks):
            if isinstance(hook, Mapping):
                built, priority = self._builder.build_hook(hook, f"custom_hooks[{index}]")
                self._add_hook(built, priority)
            else:
                self.register_hook(hook)

    def register_hooks(self, default_hooks: Mapping | None = None, custom_hooks: list | None = None) -> None:
        self.register_default_hooks(default_hooks)
        if custom_hooks:
            self.register_custom_hooks(list(custom_hooks))

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call every hook that overrides stage ``fn_name``, in priority order."""
        self.hooks.call(self, fn_name, **kwargs)

    def hooks_info(self) -> str:
        """The hook order per stage, in MMEngine's layout."""
        return self.hooks.info()

    def get_hooks_info(self) -> str:
        return self.hooks.info()

    # --- running ------------------------------------------------------------------
    def train(self) -> torch.nn.Module:
        """Train to the end (or until stopped); returns the model."""
        loop = self.train_loop
        if self.val_loop is not None:
            self.val_loop  # noqa: B018 - built now, so config errors surface before training
        self._in_training = True
        try:
            return self._run(loop.run)
        finally:
            self._in_training = False

    @property
    def in_training(self) -> bool:
        """True inside ``train()`` (validation may also run alone, through ``val()``)."""
        return self._in_training

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

    def _run(self, body: Any) -> Any:
        self._prepare_run_dir()
        self.control.open()
        with self.message_hub.activated(), self._signal_handlers(), self._log_file(), self._serving(), \
                _frozen_gc(), self._closing_control():
            self.message_hub.update_info("pid", os.getpid())
            self.message_hub.update_info("started", time.time())
            self.message_hub.set_status("running")
            try:
                self.load_or_resume()
                barrier()  # every rank starts from the same state
                # The model, data and torch's own objects live as long as the run: moving them out
                # of the collector's sight keeps full collections from walking them again and again.
                gc.collect()
                gc.freeze()
                self.started = True
                self.call_hook("before_run")
                result = body()
            except BaseException as error:
                detail = f"{type(error).__name__}: {error}"
                trace = "".join(traceback.format_exception(error))
                self.message_hub.update_info("error_traceback", trace)
                self.logger.error(f"run failed: {detail}\n{trace.rstrip()}")
                self.message_hub.set_status("failed", detail)
                self._safe_after_run()
                raise
            stopped = self._train_loop is not None and self._train_loop.stop_training
            errors = self.hooks.call_all(self, "after_run")
            if errors:
                name, error = errors[0]
                self.message_hub.set_status("failed", f"{name}.after_run: {type(error).__name__}: {error}")
                raise error
            self.message_hub.set_status("stopped" if stopped else "finished", self.stop_reason or "")
            return result

    def _safe_after_run(self) -> None:
        # Cleanup (closing writers, flushing logs) must run on every exit path and in every
        # hook, but must not hide the error that ended the run.
        for name, error in self.hooks.call_all(self, "after_run"):
            self.logger.error(f"{name}.after_run failed during cleanup: {type(error).__name__}: {error}")

    # --- steering -------------------------------------------------------------------
    def safe_point(self) -> None:
        """Between iterations and epochs, in the training thread: apply commands, serve save and stop requests.

        In a distributed run every rank reaches the same safe points; rank 0 takes the
        commands and all ranks apply them at the same one (see ``_agree``).
        """
        if is_distributed():
            if self.agreement:
                self._agree()
            return
        self.control.drain()
        self._serve_requests()

    def _agree(self) -> None:
        """Every few iterations, all ranks agree on what to do: rank 0's commands, any rank's stop or save.

        One small all-reduce (plus a broadcast when there are commands) every ~100 ms of
        training, whatever the iteration time: the interval comes from rank 0's iteration
        time, which the all-reduce carries, so every rank counts down the same number.
        """
        self._sync_countdown -= 1
        if self._sync_countdown > 0:
            return
        control, main = self.control, is_main_process()
        while True:
            started, since_iter = self._sync_clock
            now = time.perf_counter()
            # Per training iteration, not per safe point (the one between epochs follows the
            # last iteration's at once); no iteration since the last agreement: no estimate.
            done = self.iter - since_iter
            per_iter = (now - started) / done if main and done > 0 else 0.0
            pending, stop, save, iter_time = all_reduce_max([
                control.pending_count() if main else 0,
                1 if self._stop_requested is not None else 0,
                1 if self._save_requested is not None else 0,
                per_iter,
            ])
            if pending:
                requests = control.take_pending() if main else []
                specs = broadcast_object([(r.id, r.name, r.args) for r in requests] if main else None)
                if main:
                    control.apply_requests(requests)
                else:
                    control.apply_mirrored(specs)
            if save and self._save_requested is None:
                self._save_requested = "another rank asked to save"
            if stop and self._stop_requested is None:
                self._stop_requested = "another rank received a stop signal"
            self._serve_requests()
            self._sync_countdown = max(1, min(1000, int(0.1 / iter_time))) if iter_time > 0 else 1
            self._sync_clock = (time.perf_counter(), self.iter)
            loop = self._train_loop
            if not control.paused or (loop is not None and loop.stop_training):
                return
            if main:
                control.wait_for_commands(0.2)  # paused: every rank waits here, in the collective

    def _serve_requests(self) -> None:
        if self._signal_note is not None:
            note, self._signal_note = self._signal_note, None
            self.logger.warning(note)
        if self._save_requested is not None:
            reason, self._save_requested = self._save_requested, None
            self.save_now(reason)
        if self._stop_requested is not None:
            reason, self._stop_requested = self._stop_requested, None
            if self._stop_saves:
                self.save_now(reason)
            self.stop_reason = reason
            self.logger.warning(f"stopping: {reason}")
            self.stop()

    def request_save(self, reason: str = "requested") -> None:
        """Save a checkpoint at the next safe point (thread- and signal-safe)."""
        self._save_requested = reason

    def request_stop(self, reason: str = "requested", save: bool = True) -> None:
        """Stop after the current iteration, saving a checkpoint first unless ``save=False``."""
        self._stop_saves = save
        self._stop_requested = reason
        self.control.wake()

    def stop(self) -> None:
        """End the train loop after the current iteration (no checkpoint; see ``request_stop``)."""
        if self._train_loop is not None:
            self._train_loop.stop_training = True

    def save_now(self, reason: str = "requested") -> Path | None:
        """Save a resumable checkpoint of the current position through the CheckpointHook's safe path."""
        from cockpit.hooks.checkpoint import CheckpointHook

        hook = next((h for h in self.hooks.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None:
            self.logger.warning(f"cannot save ({reason}): the run has no CheckpointHook")
            return None
        path = hook.save_now(self)
        self.logger.info(f"saved {path} ({reason})")
        return path

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Ctrl-C / SIGTERM: finish the iteration, save, stop; twice: exit at once. SIGUSR1: save."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        # Handlers only set flags: they may interrupt code holding the hub's or the queue's
        # lock, so logging or waking anything from here could deadlock. The safe point logs.
        def on_stop(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stop_requested is not None or (self._train_loop and self._train_loop.stop_training):
                raise KeyboardInterrupt(f"second {name}: exiting at once")
            self._signal_note = (f"received {name}: finishing this iteration, saving a checkpoint, then stopping "
                                 "(send it again to exit at once)")
            self._stop_saves = True
            self._stop_requested = f"received {name}"

        def on_save(signum: int, frame: Any) -> None:
            self._save_requested = f"received {signal.Signals(signum).name}"

        wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGUSR1: on_save}
        previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- checkpoints ----------------------------------------------------------------
    def load_or_resume(self) -> None:
        """Resume or load weights as ``resume`` and ``load_from`` say (once)."""
        if self._has_loaded or (not self._resume and self._load_from is None):
            return
        if isinstance(self._resume, str):
            self.resume(self._resume)
        elif self._resume and self._load_from is not None:
            self.resume(self._load_from)
        elif self._resume:
            self._auto_resume()
        else:
            self.load_checkpoint(self._load_from)
        self._has_loaded = True

    def _auto_resume(self) -> None:
        if self.is_main_process:
            for path in ckpt.clean_temporaries(self.work_dir):
                self.logger.warning(f"removed {path.name}, left by an interrupted save")
        failures = []
        for candidate in ckpt.candidate_checkpoints(self.work_dir):
            if self.is_main_process:
                ckpt.clean_temporaries(candidate.parent)
            try:
                self.resume(candidate)
            except CheckpointError as error:
                failures.append(str(error))
                self.logger.warning(f"cannot resume from {candidate}: {error}; trying the previous checkpoint")
                continue
            if failures:
                self.logger.warning(f"resumed from the previous good checkpoint {candidate}")
            return
        reason = "; ".join(failures) if failures else "no checkpoint files found"
        raise CheckpointError(
            f"resume was requested but there is nothing to resume from in {self.work_dir} ({reason}). "
            "Start without --resume for a fresh run, or pass the checkpoint path"
        )

    def save_checkpoint(self, out_dir: str | os.PathLike, filename: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: dict | None = None) -> Path:
        """Write a full checkpoint atomically to ``out_dir/filename`` and return its path."""
        loop = self._train_loop
        position = loop.position() if loop is not None else {"epoch": 0, "iter": 0, "batch_in_epoch": 0}
        checkpoint: dict[str, Any] = {
            "meta": {
                "format": ckpt.FORMAT,
                "cockpit_version": __version__,
                **position,
                "seed": self.seed,
                "experiment_name": self.experiment_name,
                "cfg": self.cfg.pretty_text,
                "time": time.time(),
                "world_size": self.world_size,
                "batch_size": getattr(self._train_dataloader, "batch_size", None),
                # Samples of the current epoch consumed by all ranks together: lets a run resume
                # with another number of processes at the same place in the data.
                "samples_in_epoch": position["batch_in_epoch"] * self.world_size
                * (getattr(self._train_dataloader, "batch_size", None) or 1),
                **(meta or {}),
            },
            "state_dict": _unwrap_model(self.model).state_dict(),
            "message_hub": self.message_hub.state_dict(),
            "rng": ckpt.rng_state(),
        }
        if save_optimizer and self.optim_wrapper is not None:
            checkpoint["optimizer"] = self.optim_wrapper.state_dict()
        if save_param_scheduler and self.param_schedulers:
            checkpoint["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        hook_states = {}
        for name, hook in zip(self.hooks.names, self.hooks.hooks, strict=True):
            state = hook.state_dict()
            if state is not None:
                hook_states[name] = state
        checkpoint["hooks"] = hook_states
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        path = Path(out_dir) / filename
        if self.is_main_process:
            hub = self.message_hub
            status = hub.status
            hub.set_status("saving")
            try:
                ckpt.save_checkpoint(checkpoint, path)
            finally:
                hub.set_status(status)
            hub.record_checkpoint(str(path), position["epoch"], position["iter"])
        return path

    def _check_fits(self, checkpoint: dict[str, Any], filename: str | os.PathLike, schedulers: bool) -> None:
        """Raise CheckpointError unless the checkpoint's weights and schedulers fit this run."""
        own = _unwrap_model(self.model).state_dict()
        theirs = checkpoint["state_dict"]
        problems = [f"missing {k}" for k in own if k not in theirs]
        problems += [f"unexpected {k}" for k in theirs if k not in own]
        problems += [f"{k}: {tuple(theirs[k].shape)} in the file, {tuple(v.shape)} in the model"
                     for k, v in own.items() if k in theirs and hasattr(theirs[k], "shape")
                     and tuple(theirs[k].shape) != tuple(v.shape)]
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise CheckpointError(f"{filename} does not fit this model ({shown}); was it saved by another config?")
        if schedulers and "param_schedulers" in checkpoint:
            count = len(checkpoint["param_schedulers"])
            if count != len(self.param_schedulers):
                raise CheckpointError(f"{filename} has {count} parameter schedulers but the config builds "
                                      f"{len(self.param_schedulers)}; resume with the config it was trained with")

    def _read(self, filename: str | os.PathLike) -> dict[str, Any]:
        return ckpt.load_checkpoint(filename, map_location="cpu", trusted=self.trust_checkpoints)

    def load_checkpoint(self, filename: str | os.PathLike, strict: bool = False,
                        revise_keys: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """Load model weights only (``load_from``), stripping a ``module.`` prefix."""
        checkpoint = self._read(filename)
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{filename} holds no model weights (no 'state_dict' of tensors)")
        for pattern, replacement in revise_keys or [(r"^module\.", "")]:
            state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
        result = _unwrap_model(self.model).load_state_dict(state, strict=strict)
        if result.missing_keys or result.unexpected_keys:
            self.logger.warning(f"loaded {filename} with missing keys {result.missing_keys} "
                                f"and unexpected keys {result.unexpected_keys}")
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def resume(self, filename: str | os.PathLike, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Restore a full training state: weights, optimizer, schedulers, hub, hooks, RNG, position.

        ``checkpoint`` is the file's content when the caller has already read it.
        """
        if checkpoint is None:
            checkpoint = ckpt.check_cockpit_checkpoint(self._read(filename), filename)
        meta = checkpoint["meta"]
        loop = self.train_loop
        # Check everything before changing anything: a refused resume leaves the run as it was.
        self._check_fits(checkpoint, filename, resume_param_scheduler)
        _unwrap_model(self.model).load_state_dict(checkpoint["state_dict"])
        if resume_optimizer and "optimizer" in checkpoint and self.optim_wrapper is not None:
            self.optim_wrapper.load_state_dict(checkpoint["optimizer"])
        elif resume_optimizer and self.optim_wrapper is not None:
            self.logger.warning(f"{filename} has no optimizer state; the optimizer starts fresh")
        if resume_param_scheduler and "param_schedulers" in checkpoint:
            for scheduler, state in zip(self.param_schedulers, checkpoint["param_schedulers"], strict=True):
                scheduler.load_state_dict(state)
        self.message_hub.load_state_dict(checkpoint["message_hub"])
        for name, hook in zip(self.hooks.names, self.hooks.hooks, strict=True):
            state = checkpoint.get("hooks", {}).get(name)
            if state is not None:
                hook.load_state_dict(state)
        batch_in_epoch = int(meta.get("batch_in_epoch", 0))
        batch_size = getattr(self._train_dataloader, "batch_size", None) or 1
        if meta.get("world_size", 1) != self.world_size and "samples_in_epoch" in meta:
            batch_in_epoch = int(meta["samples_in_epoch"]) // (batch_size * self.world_size)
            self.logger.warning(f"{filename} was written by {meta.get('world_size', 1)} processes and this run has "
                                f"{self.world_size}: continuing at batch {batch_in_epoch} of the epoch")
        loop.restore_position(int(meta["epoch"]), int(meta["iter"]), batch_in_epoch)
        self.optim_wrapper.initialize_count_status(loop.iter, loop.max_iters)
        if "rng" in checkpoint:
            ckpt.set_rng_state(checkpoint["rng"])
        old_batch = meta.get("batch_size")
        if old_batch is not None and meta.get("world_size", 1) * old_batch != self.world_size * (
                getattr(self._train_dataloader, "batch_size", old_batch) or old_batch):
            self.logger.warning("the global batch size differs from the checkpoint's run; "
                                "the learning-rate schedule and data position may not match")
        self.resumed_from = str(filename)
        self.message_hub.update_info("resumed_from", str(filename))
        self.message_hub.add_marker("resume", loop.iter, str(filename))
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        self.logger.info(f"resumed from {filename}: epoch {loop.epoch}, iter {loop.iter}")
        return checkpoint

    # --- set-up ---------------------------------------------------------------------
    def _unique_timestamp(self) -> str:
        stamp = time.strftime("%Y%m%d_%H%M%S")
        candidate, n = stamp, 1
        while (self._work_dir / candidate).exists():
            n += 1
            candidate = f"{stamp}_{n}"
        return candidate

    def _prepare_run_dir(self) -> None:
        if self._run_dir_ready or not self.is_main_process:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.dump_config()
        self._run_dir_ready = True

    @contextlib.contextmanager
    def _closing_control(self) -> Iterator[None]:
        """When the run ends, commands still queued get an outcome (rejected) instead of none."""
        try:
            yield
        finally:
            self.control.close("the run ended before the command could be applied")

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        """Serve the hub and the command queue to views while a loop runs (rank 0, if asked)."""
        if not self.serve or not self.is_main_process:
            yield
            return
        from cockpit.channel.server import ChannelServer

        server = ChannelServer(self, listen=self.serve if isinstance(self.serve, str) else None).start()
        self.logger.info(f"serving views: cockpit attach {self.log_dir}")
        try:
            yield
        finally:
            server.stop()

    @contextlib.contextmanager
    def _log_file(self) -> Iterator[None]:
        """The run's log file, open only while a loop runs (a notebook may make many runners)."""
        if not self.is_main_process:
            yield
            return
        first = not (self.log_dir / f"{self._timestamp}.log").exists()
        handler = logging.FileHandler(self.log_dir / f"{self._timestamp}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        self.logger.addHandler(handler)
        if first:
            self.logger.info(f"Hooks will be executed in the following order:\n{self.hooks_info()}")
        try:
            yield
        finally:
            self.logger.removeHandler(handler)
            handler.close()

    def dump_config(self) -> None:
        """Write the config into the run's folder: a verbatim copy and the resolved one.

        ``<name>.py`` is the file as written; ``<name>.resolved.py`` has the bases merged and
        the overrides applied. Classes defined in the config are written as ``<name>.Class``,
        which the verbatim copy beside it provides, so the resolved file runs again as is.
        """
        if self.cfg.filename and Path(self.cfg.filename).is_file():
            source = Path(self.cfg.filename)
            shutil.copyfile(source, self.log_dir / source.name)
            self.cfg.dump(self.log_dir / f"{source.stem}.resolved.py")
        else:
            self.cfg.dump(self.log_dir / f"{self._timestamp}.py")

    def _make_logger(self) -> logging.Logger:
        # One logger per runner (two runs in one notebook must not share handlers).
        logger = logging.getLogger(f"cockpit.run.{self._experiment_name}.{id(self):x}")
        logger.setLevel(self.log_level)
        logger.propagate = False
        logger.addHandler(_HubLogHandler(self.message_hub))
        if self.log_to_console and is_main_process():
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(logging.Formatter("%(asctime)s - %(message)s", "%m/%d %H:%M:%S"))
            logger.addHandler(console)
        return logger

    def _device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")

    def _setup_distributed(self) -> None:
        if self.launcher == "none":
            return
        dist_cfg = dict(self.env_cfg.get("dist_cfg", {}))
        init_distributed(self.launcher, backend=dist_cfg.get("backend"),
                         timeout_minutes=float(dist_cfg.get("timeout_minutes", 30)))

    def __repr__(self) -> str:
        return f"Runner({self.experiment_name!r}, work_dir={str(self.work_dir)!r})"


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Give the objects frozen during a run back to the collector when it ends."""
    try:
        yield
    finally:
        gc.unfreeze()


def _unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def _unwrap_config(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.to_dict() if isinstance(v, ConfigDict) else v for k, v in values.items()}
