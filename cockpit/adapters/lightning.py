"""Lightning: ``CockpitCallback`` serves a ``lightning.Trainer`` fit to Cockpit's views.

One line::

    trainer = lightning.Trainer(..., callbacks=[CockpitCallback()])

When ``fit`` starts, the run is served from ``<work_dir>/<timestamp>/`` (``work_dirs`` by
default, where ``cockpit attach`` and ``cockpit ls`` look first). It publishes:

- the loss of every training step (``train/loss``), the learning rate, the step's time: kept per
  step and published a few times a second (``AdaptedRun.tick``), the losses read from the device
  then, together, not once a step; what the module logs with ``self.log``
  (``trainer.callback_metrics``: ``val_loss`` becomes ``val/loss``, ``train_acc`` ``train/acc``, a
  name with a ``/`` stays as it is) a few times a second and after every validation;
- the callbacks and the module's hooks in the order Lightning calls them, each call timed (the
  timing rides on the trainer's profiler, whatever profiler it is; with Lightning's default
  ``PassThroughProfiler``, which does nothing, an equivalent that does nothing for less);
- every checkpoint ``trainer.save_checkpoint`` writes and every one ``ModelCheckpoint`` deletes;
- the run's status.

Commands are applied at the end of each training batch (``on_train_batch_end``), on every rank:
rank 0's commands reach the others through the strategy's ``broadcast``. ``val`` runs validation
right after this batch, where Lightning would run it; ``save`` writes
``cockpit-epoch=E-step=S.ckpt`` beside ``ModelCheckpoint``'s; ``stop`` saves and sets
``trainer.should_stop``; ``set`` scales the schedulers' ``base_lrs`` with the lr. ``resume`` is
refused with the way to do it: Lightning restores a checkpoint only when ``fit`` starts
(``trainer.fit(model, ckpt_path=...)``); loading one into a running fit would leave its loops'
positions wrong. Callbacks that have a ``commands()`` method offer their commands
(``cockpit.commands.Command``); a handler gets this run (``run.trainer``, ``run.pl_module``,
``run.message_hub``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from time import perf_counter
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.core import LightningModule
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.utilities.model_helpers import is_overridden

from cockpit.adapters.base import AdaptedRun, HookEntry, read_floats, resolve_checkpoint
from cockpit.commands import Command, CommandRejected
from cockpit.rundir import unique_timestamp

#: The callback hooks in the order a fit reaches them (the hook table's rows).
STAGES: tuple[str, ...] = (
    "setup", "on_fit_start", "on_sanity_check_start", "on_sanity_check_end", "on_train_start",
    "on_train_epoch_start", "on_train_batch_start", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end", "on_validation_start",
    "on_validation_epoch_start", "on_validation_batch_start", "on_validation_batch_end",
    "on_validation_epoch_end", "on_validation_end", "on_train_epoch_end", "on_save_checkpoint",
    "on_load_checkpoint", "on_train_end", "on_fit_end", "teardown", "on_exception",
)
#: Where Lightning calls the monitoring callbacks (ModelCheckpoint, EarlyStopping) after the module.
MONITORING_STAGES = frozenset({"on_train_epoch_end"})
#: Seconds between two reads of ``trainer.callback_metrics`` during training (each read computes them).
METRICS_INTERVAL = 0.25


def metric_key(name: str, mode: str) -> str:
    """The hub key of a metric logged as ``name``: ``val_loss`` -> ``val/loss``; ``acc`` -> ``<mode>/acc``."""
    if "/" in name:
        return name
    for prefix in ("train", "val", "test"):
        for joiner in ("_", "-"):
            if name.startswith(prefix + joiner):
                return f"{prefix}/{name[len(prefix) + 1:]}"
    return f"{mode}/{name}"


class _Passing:
    """What ``PassThroughProfiler.profile(name)`` does, for less: nothing, with the action's name as the context's
    value (its ``start`` and ``stop`` do nothing; its ``profile`` is a generator context, which costs more)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        return None


class _Timed:
    """The trainer profiler's context for one hook call, timed for the hook trace.

    ``entry`` is the call's ``(stage, hook name, the trace's list for the stage's calls, the hub's counter)``.
    """

    __slots__ = ("run", "entry", "inner", "began")

    def __init__(self, run: LightningRun, entry: tuple[str, str, list[tuple[str, float]], list[float]],
                 inner: Any) -> None:
        self.run, self.entry, self.inner = run, entry, inner

    def __enter__(self) -> Any:
        value = self.inner.__enter__()
        self.began = perf_counter()
        return value

    def __exit__(self, *exc: Any) -> Any:
        now = perf_counter()
        run = self.run
        held = run.held_seconds  # a safe point inside the call (a pause) is not the hook's time
        if held:
            run.held_seconds = 0.0
        stage, name, calls, counter = self.entry
        trace = run.trace
        if trace.listened:
            calls.append((name, now - self.began - held))
        else:
            counter[0] += 1
            counter[1] += now - self.began - held
        if now >= trace.next_show:
            trace.enter(stage, now)
        if now >= trace.next_flush:
            trace.flush(now)
        return self.inner.__exit__(*exc)


class LightningRun(AdaptedRun):
    """A Lightning fit, served to Cockpit's views.

    Args:
        trainer: the trainer (``on_fit_start`` is under way).
        pl_module: the LightningModule it fits.
        work_dir: the run folder's parent.
        listen: ``'HOST:PORT'`` to serve over TCP instead of private Unix sockets.
        experiment_name: the run's name (``<script>_<timestamp>`` by default).
    """

    framework = "lightning"

    def __init__(self, trainer: Any, pl_module: Any, work_dir: str | Path, listen: str | None = None,
                 experiment_name: str | None = None) -> None:
        work_dir = Path(work_dir).resolve()
        timestamp = trainer.strategy.broadcast(unique_timestamp(work_dir) if trainer.is_global_zero else None)
        framework_logger = logging.getLogger("lightning.pytorch")
        super().__init__(work_dir=work_dir, timestamp=timestamp, experiment_name=experiment_name,
                         logger=framework_logger.getChild("cockpit"), hub_loggers=[framework_logger],
                         rank=trainer.global_rank, world_size=trainer.world_size, listen=listen)
        self.framework_logger = framework_logger
        self.trainer, self.pl_module = trainer, pl_module
        self._max_iters = self._total_steps()
        self._val_requested = False
        self._batch_started = 0.0
        self._batch_ended: float | None = None
        self._step: int | None = None  # global_step when the last batch ended (the next batch's, as it starts)
        # Per batch until the next tick (``publish_batched``): (step, loss tensor or None, lr or None, seconds,
        # data seconds or None, the step under way when its data came).
        self._batches: list[tuple[int, Any, float | None, float, float | None, int]] = []
        self._metrics_read = 0.0
        self._published: dict[str, float] = {}
        self._actions: dict[str, tuple[str, str, list[tuple[str, float]], list[float]]] = {}

    def _total_steps(self) -> int | None:
        trainer = self.trainer
        if trainer.max_steps and trainer.max_steps > 0:
            return int(trainer.max_steps)
        try:
            total = trainer.estimated_stepping_batches
        except Exception:  # noqa: BLE001 - an unsized dataloader: no total, no ETA
            return None
        return int(total) if math.isfinite(total) else None

    epoch = property(lambda self: self.trainer.current_epoch)
    iter = property(lambda self: self.trainer.global_step, doc="Optimizer steps done (Lightning's global_step).")
    max_iters = property(lambda self: self._max_iters)

    @property
    def max_epochs(self) -> int | None:
        value = self.trainer.max_epochs
        return value if value is not None and value > 0 else None

    # --- taking over what Lightning lets us --------------------------------------------------------
    def install(self) -> None:
        """Time the hooks, note checkpoints saved and removed, validate on demand (until the run ends)."""
        trainer = self.trainer
        self.patch(trainer.profiler, "profile", self._timing(trainer.profiler.profile))
        self.patch(trainer, "save_checkpoint", self._noting_saves(trainer.save_checkpoint))
        self.patch(trainer.strategy, "remove_checkpoint", self._noting_removals(trainer.strategy.remove_checkpoint))
        epoch_loop = trainer.fit_loop.epoch_loop
        self.patch(epoch_loop, "_should_check_val_fx", self._validating_on_demand(epoch_loop._should_check_val_fx))

    def hook_rows(self) -> tuple[list[tuple[str, list[HookEntry]]], dict[str, tuple[str, str]]]:
        """The hook table, and the profiler's action name of each of its calls -> ``(stage, hook name)``."""
        callbacks, module = self.trainer.callbacks, self.pl_module
        names, counts = [], {}
        for callback in callbacks:
            name = type(callback).__name__
            counts[name] = counts.get(name, 0) + 1
            names.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
        module_name = type(module).__name__
        rows, actions = [], {}
        for stage in STAGES:
            callers = [(n, c) for n, c in zip(names, callbacks, strict=True) if is_overridden(stage, c, parent=Callback)]
            entries: list[HookEntry] = []
            monitoring = [(n, c) for n, c in callers if isinstance(c, (EarlyStopping, Checkpoint))]
            first = [nc for nc in callers if nc not in monitoring] if stage in MONITORING_STAGES else callers
            for name, callback in first:
                entries.append(("callback", callbacks.index(callback), name))
                actions.setdefault(f"[Callback]{callback.state_key}.{stage}", (stage, name))
            if hasattr(LightningModule, stage) and is_overridden(stage, module, parent=LightningModule):
                entries.append(("module", len(callbacks), module_name))
                actions[f"[LightningModule]{type(module).__name__}.{stage}"] = (stage, module_name)
            if stage in MONITORING_STAGES:
                for name, callback in monitoring:
                    entries.append(("callback", callbacks.index(callback), name))
                    actions.setdefault(f"[Callback]{callback.state_key}.{stage}", (stage, name))
            rows.append((stage, entries))
        return rows, actions

    def publish_hooks(self) -> None:
        rows, actions = self.hook_rows()
        self.trace.publish_table(rows)
        self._actions.clear()  # in place: ``timed_profile`` holds it
        trace = self.trace
        self._actions.update({action: (stage, name, trace.calls(stage), trace.counter(stage, name))
                              for action, (stage, name) in actions.items()})

    def _timing(self, profile: Any) -> Any:
        """The profiler's ``profile``, timing the hook calls of the table (Lightning wraps each in it).

        Lightning calls it a few dozen times a batch, for its own steps too: those go straight through. With
        Lightning's default ``PassThroughProfiler``, which does nothing, ``_Passing`` does that nothing for less,
        so timing the hooks costs the batch about what the profiler it replaces did.
        """
        actions, run = self._actions, self
        if type(self.trainer.profiler) is PassThroughProfiler:  # exactly: a subclass may do something
            profile = _Passing

        def timed_profile(action_name: str) -> Any:
            entry = actions.get(action_name)
            if entry is None:
                return profile(action_name)
            return _Timed(run, entry, profile(action_name))

        return timed_profile

    def _noting_saves(self, save: Any) -> Any:
        def save_checkpoint(filepath: Any, *args: Any, **kwargs: Any) -> Any:
            result = save(filepath, *args, **kwargs)
            if self.main:
                self.checkpoint_saved(filepath)
            return result

        return save_checkpoint

    def _noting_removals(self, remove: Any) -> Any:
        def remove_checkpoint(filepath: Any) -> Any:
            result = remove(filepath)
            if self.main:
                path = str(Path(filepath).resolve())
                if any(c["path"] == path for c in self.message_hub.checkpoints):
                    self.message_hub.record_checkpoint_removed(path, "removed by the checkpoint callback")
            return result

        return remove_checkpoint

    def _validating_on_demand(self, should_check: Any) -> Any:
        def should_check_val(*args: Any, **kwargs: Any) -> bool:
            if self._val_requested:
                self._val_requested = False
                return True
            return should_check(*args, **kwargs)

        return should_check_val

    # --- commands ------------------------------------------------------------------------------------
    def extra_commands(self) -> Iterable[Command]:
        for callback in self.trainer.callbacks:
            declared = getattr(callback, "commands", None)
            if callable(declared):
                yield from declared()

    def validate(self) -> str:
        trainer, module = self.trainer, self.pl_module
        if not is_overridden("validation_step", module, parent=LightningModule):
            raise CommandRejected(f"{type(module).__name__} has no validation_step")
        source = getattr(trainer.fit_loop.epoch_loop.val_loop, "_data_source", None)
        if source is not None and not source.is_defined():
            raise CommandRejected("this fit has no validation data (no val_dataloaders, no val_dataloader())")
        if trainer.limit_val_batches == 0:
            raise CommandRejected("validation is switched off (limit_val_batches=0)")
        self._val_requested = True
        return f"validating after this batch (step {self.iter}); the metrics follow as val/ scalars and in the log"

    def checkpoint_dir(self) -> Path:
        callback = self.trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None)
        return Path(folder) if folder else self.work_dir / "checkpoints"

    def save_checkpoint(self, reason: str) -> str:
        path = self.checkpoint_dir() / f"cockpit-epoch={self.epoch}-step={self.iter}.ckpt"
        self.trainer.save_checkpoint(path)  # every rank: the strategy decides who writes
        return f"saved {path}"

    def end_training(self, reason: str) -> None:
        self.trainer.should_stop = True

    def resume_description(self) -> str:
        return "how to continue from a checkpoint (Lightning restores one only when fit starts)"

    def resume(self, which: str, *trust: str) -> str:
        callback = self.trainer.checkpoint_callback
        known = [c["path"] for c in self.message_hub.checkpoints]
        known += [str(p) for p in self.checkpoint_dir().glob("*.ckpt")]
        path = resolve_checkpoint(which, known, latest=self.message_hub.get_info("last_ckpt"),
                                  best=getattr(callback, "best_model_path", None) or None,
                                  folders=[self.checkpoint_dir(), self.work_dir])
        raise CommandRejected(f"Lightning restores a checkpoint only when fit starts, so it cannot be loaded into this "
                              f"running fit; stop this run (stop), then fit again with "
                              f"trainer.fit(model, ckpt_path={str(path)!r})")

    def lr_targets(self) -> list[tuple[list[dict[str, Any]], list[Any]]]:
        configs = self.trainer.lr_scheduler_configs
        return [(optimizer.param_groups, [c.scheduler for c in configs if c.scheduler.optimizer is optimizer])
                for optimizer in self.trainer.optimizers]

    def broadcast(self, obj: Any) -> Any:
        return self.trainer.strategy.broadcast(obj, src=0)

    # --- what the callback reports ---------------------------------------------------------------------
    def batch_started(self) -> None:
        now = perf_counter()
        self._batch_started = now
        if self._step is None:
            self._step = self.iter  # Lightning's global_step walks its loops: read once a batch, at its end
        self._iter_pending = self._step

    def batch_ended(self, outputs: Any) -> None:
        """The batch is done (``global_step`` counts its optimizer step): keep its loss, lr and time for the next tick.

        The loss stays a tensor until then: reading it (``.item()``) would wait for the device every batch.
        """
        now = perf_counter()
        done = self.iter
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.detach() if loss.requires_grad else loss
        else:
            loss = None
        optimizers = self.trainer.optimizers
        lr = optimizers[0].param_groups[0]["lr"] if optimizers else None
        ended, self._batch_ended = self._batch_ended, now
        data = self._batch_started - ended if ended is not None else None
        # The step this batch made (as a Cockpit run plots it), and the one under way when its data came.
        self._batches.append((max(0, done - 1), loss, lr, now - self._batch_started, data, self._step))
        self._step = done
        if now >= self.next_tick:
            self.tick(now)

    def tick(self, now: float | None = None) -> None:
        now = perf_counter() if now is None else now
        super().tick(now)
        if now - self._metrics_read >= METRICS_INTERVAL:
            self.publish_metrics("train")  # what the module logged (reading it computes it: not every tick)

    def publish_batched(self) -> None:
        """The batches' loss, lr, time and data time since the last call, each at its step."""
        batches, self._batches = self._batches, []
        if not batches:
            return
        losses = read_floats([b[1] for b in batches if b[1] is not None])
        hub = self.message_hub
        for step, loss, lr, seconds, data, data_step in batches:
            if data is not None:
                hub.update_scalar("train/data_time", data, data_step)
            if loss is not None:
                hub.update_scalar("train/loss", next(losses), step)
            if lr is not None:
                hub.update_scalar("train/lr", lr, step)
            hub.update_scalar("train/time", seconds, step)

    def publish_metrics(self, mode: str) -> dict[str, float]:
        """What the module logged (``trainer.callback_metrics``) that changed, as ``<mode>/...`` scalars."""
        self._metrics_read = perf_counter()
        changed = {}
        for name, value in self.trainer.callback_metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError, RuntimeError):
                continue
            key = metric_key(name, mode)
            if key == "train/loss" or self._published.get(key) == number:
                continue  # the loss comes from every step's output; an unchanged value is not news
            self._published[key] = number
            changed[key] = number
        self.scalars(changed, self.iter)
        return changed


class CockpitCallback(Callback):
    """Serves a fit to Cockpit's views and applies their commands (see the module's docstring).

    Args:
        work_dir: where run folders go (``work_dirs`` by default: ``cockpit ls`` and ``cockpit attach``
            look there first).
        listen: ``'HOST:PORT'`` to serve over TCP (CURVE-encrypted, keys in the connection file)
            instead of private Unix sockets.
        experiment_name: the run's name (``<script>_<timestamp>`` by default).
    """

    # The per-batch hooks this callback has no use for are not methods: Lightning calls only a hook that is
    # callable (``_call_callback_hooks``), so a batch does not pay for six profiled calls that do nothing.
    on_before_backward = on_after_backward = on_before_optimizer_step = on_before_zero_grad = None
    on_validation_batch_start = on_validation_batch_end = None

    def __init__(self, work_dir: str | Path = "work_dirs", listen: str | None = None,
                 experiment_name: str | None = None) -> None:
        self.work_dir, self.listen, self.experiment_name = work_dir, listen, experiment_name
        self.run: LightningRun | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        run = self.run = LightningRun(trainer, pl_module, self.work_dir, self.listen, self.experiment_name)
        run.publish_hooks()
        run.install()
        run.keep_log_file(f"Hooks will be executed in the following order:\n{self._hooks_info()}", run.framework_logger)
        run.start({"epoch": run.epoch, "iter": run.iter, "max_epochs": run.max_epochs, "max_iters": run.max_iters,
                   "loop_stage": "train"})

    def _hooks_info(self) -> str:
        rows, _ = self.run.hook_rows()
        return "\n".join(f"{stage}: {', '.join(name for _, _, name in entries)}" for stage, entries in rows if entries)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.progress(epoch=trainer.current_epoch)
        self.run.publish_metrics("train")  # the previous epoch's epoch-level values

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.run.batch_started()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.run.batch_ended(outputs)
        if getattr(trainer, "received_sigterm", False) and self.run.stop_reason is None and trainer.world_size == 1:
            # Lightning ends the fit with SIGTERMException right after this batch: save first, as a
            # Cockpit run does on SIGTERM, so the run is resumable from here. One process only: the
            # ranks of a DDP fit learn of the signal at different batches, and a save is collective.
            self.run.stop_reason = "received SIGTERM"
            message = self.run.save_checkpoint("received SIGTERM")
            if self.run.main:
                self.run.logger.warning(f"cockpit: received SIGTERM: {message}; stopping")
            return
        self.run.safe_point()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self.run is not None and not trainer.sanity_checking:
            self.run.tick()  # the batches before it, and what the module logged
            self.run.publish_metrics("train")
            self.run.validating(True)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self.run is None or trainer.sanity_checking:
            return
        run = self.run
        metrics = run.publish_metrics("val")
        if run.main:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val/"))
            run.logger.info(f"cockpit: validation at step {run.iter}: {shown or 'no val/ metrics logged'}")
        run.validating(False)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.tick()
        self.run.publish_metrics("train")
        self.run.progress(epoch=trainer.current_epoch, iter=trainer.global_step)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.run is None:
            return
        if type(exception).__name__ == "SIGTERMException" and self.run.stop_reason is None:
            # The signal came after this batch's end: Lightning raised at the next batch's start,
            # between two steps, so the state is whole and can still be saved (one process only).
            self.run.stop_reason = "received SIGTERM"
            if trainer.world_size == 1:
                message = self.run.save_checkpoint("received SIGTERM")
                self.run.logger.warning(f"cockpit: received SIGTERM: {message}; stopping")
        self.run.finish(exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.run is not None and stage == "fit":
            self.run.finish()


__all__ = ["CockpitCallback", "LightningRun", "metric_key"]
