"""Hugging Face: ``CockpitCallback`` serves a ``transformers.Trainer`` run to Cockpit's views.

One line::

    trainer = Trainer(model, args, train_dataset=..., callbacks=[CockpitCallback()])

When ``train()`` starts, the run is served from ``<output_dir>/<timestamp>/`` (beside the Trainer's
``checkpoint-N`` folders; ``cockpit attach <output_dir>`` finds it). It publishes:

- every step's loss (what ``training_step`` returned), learning rate and time, kept per step and
  published a few times a second (``AdaptedRun.tick``; the losses read from the device then,
  together); what the Trainer logs (``on_log``: ``grad_norm``...) and its evaluations
  (``eval_loss`` becomes ``val/loss``);
- the callbacks in the order the Trainer calls them, each call timed;
- every ``checkpoint-N`` the Trainer saves, and those its rotation deletes;
- the run's status.

Commands are applied at the end of each optimizer step (``on_step_end``), through the Trainer's
own ``TrainerControl`` flags: ``val`` sets ``should_evaluate`` and ``save`` ``should_save`` (the
Trainer evaluates or saves right after the step, as its strategies would), ``stop`` saves and sets
``should_training_stop``; ``pause`` holds the step's end; ``set`` scales the scheduler's
``base_lrs`` with the lr. ``resume`` is refused with the way to do it: the Trainer restores a
checkpoint only when ``train(resume_from_checkpoint=...)`` starts (its data position and epoch
counters live in ``train()``'s own variables). Callbacks that have a ``commands()`` method offer
their commands (``cockpit.commands.Command``); a handler gets this run (``run.trainer``,
``run.flags`` the ``TrainerControl``, ``run.message_hub``).

A ``TrainerCallback`` is not handed the Trainer; the callback finds it (and the callback handler)
by looking up the call stack once, when training begins. Without it (an unusual caller), the
run is served without per-call timings and per-step losses, and ``val`` is refused (the eval
dataset cannot be checked).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from time import perf_counter
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from cockpit.adapters.base import AdaptedRun, HookEntry, read_floats, resolve_checkpoint
from cockpit.commands import Command, CommandRejected

#: The callback events in the order a training run reaches them (the hook table's rows).
STAGES: tuple[str, ...] = (
    "on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin", "on_pre_optimizer_step",
    "on_optimizer_step", "on_substep_end", "on_step_end", "on_log", "on_evaluate", "on_prediction_step",
    "on_save", "on_epoch_end", "on_train_end", "on_predict", "on_push_begin",
)
#: What the Trainer logs at the end of training (a summary, not a curve).
SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                          "train_loss"})


def _cockpit_logger() -> logging.Logger:
    """Cockpit's messages in a Hugging Face run: on the console (transformers' own logger shows only warnings)."""
    logger = logging.getLogger("cockpit.adapters.hf")
    if not logger.handlers:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(asctime)s - %(message)s", "%m/%d %H:%M:%S"))
        logger.addHandler(console)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def metric_key(name: str) -> str | None:
    """The hub key of a logged value: ``eval_loss`` -> ``val/loss``, ``grad_norm`` -> ``train/grad_norm``;
    None for what is not a curve (``epoch``, the end-of-training summary)."""
    if name == "epoch" or name in SUMMARY_KEYS:
        return None
    if name.startswith("eval_"):
        return f"val/{name[len('eval_'):]}"
    if name.startswith("test_"):
        return f"test/{name[len('test_'):]}"
    if name == "learning_rate":
        return "train/lr"
    return name if "/" in name else f"train/{name}"


def find_trainer(callback: TrainerCallback) -> tuple[Any, Any]:
    """The ``CallbackHandler`` calling ``callback`` and the ``Trainer`` that owns it, from the call stack."""
    handler = trainer = None
    frame = sys._getframe(1)
    try:
        for _ in range(20):
            if frame is None:
                break
            owner = frame.f_locals.get("self")
            if handler is None:
                if isinstance(owner, CallbackHandler) and any(c is callback for c in owner.callbacks):
                    handler = owner
            elif getattr(owner, "callback_handler", None) is handler:
                trainer = owner
                break
            frame = frame.f_back
    finally:
        del frame
    return handler, trainer


class HFRun(AdaptedRun):
    """A ``transformers.Trainer`` run, served to Cockpit's views.

    Args:
        args: the ``TrainingArguments``.
        state: the ``TrainerState``.
        handler: the ``CallbackHandler`` (None if it could not be found).
        trainer: the ``Trainer`` (None if it could not be found).
        work_dir: the run folder's parent (``args.output_dir`` by default).
        listen: ``'HOST:PORT'`` to serve over TCP instead of private Unix sockets.
        experiment_name: the run's name (``<script>_<timestamp>`` by default).
    """

    framework = "hf"

    def __init__(self, args: Any, state: Any, handler: Any, trainer: Any, work_dir: str | Path | None = None,
                 listen: str | None = None, experiment_name: str | None = None) -> None:
        logger = _cockpit_logger()
        super().__init__(work_dir=work_dir or args.output_dir, experiment_name=experiment_name, logger=logger,
                         hub_loggers=[logger, logging.getLogger("transformers")], rank=args.process_index,
                         world_size=args.world_size, listen=listen)
        self.args, self.state, self.handler, self.trainer = args, state, handler, trainer
        self.flags: Any = None  # the TrainerControl of the step being ended
        self.kwargs: dict[str, Any] = {}  # what the Trainer hands callbacks: model, optimizer, lr_scheduler...
        self._losses: list[torch.Tensor] = []  # the step's, one per micro-batch
        self._step_started = 0.0
        self._began_at = 0
        self._lr: float | None = None  # the step's, at its start
        # Per step until the next tick (``publish_batched``): (global_step at its start and at its end, its losses,
        # lr or None, seconds).
        self._steps: list[tuple[int, int, list[torch.Tensor], float | None, float]] = []

    epoch = property(lambda self: int(self.state.epoch or 0))
    iter = property(lambda self: self.state.global_step, doc="Optimizer steps done (the Trainer's global_step).")
    max_iters = property(lambda self: self.state.max_steps or None)
    max_epochs = property(lambda self: self.state.num_train_epochs or None)
    output_dir = property(lambda self: Path(self.args.output_dir).resolve())

    # --- taking over what the Trainer lets us ------------------------------------------------------
    def install(self) -> None:
        """Time the callbacks and read every step's loss (until the run ends), where the Trainer was found."""
        if self.handler is not None:
            for callback, name in zip(self.handler.callbacks, self._names(), strict=True):
                for stage in STAGES:
                    if _overrides(callback, stage):
                        self.patch(callback, stage, self._timed(stage, name, getattr(callback, stage)))
        if self.trainer is not None:
            self.patch(self.trainer, "training_step", self._watched_step(self.trainer.training_step))

    def _names(self) -> list[str]:
        counts: dict[str, int] = {}
        names = []
        for callback in self.handler.callbacks if self.handler is not None else ():
            name = type(callback).__name__
            counts[name] = counts.get(name, 0) + 1
            names.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
        return names

    def hook_rows(self) -> list[tuple[str, list[HookEntry]]]:
        callbacks = self.handler.callbacks if self.handler is not None else ()
        return [(stage, [("callback", index, name) for index, (callback, name)
                         in enumerate(zip(callbacks, self._names(), strict=True)) if _overrides(callback, stage)])
                for stage in STAGES]

    def _timed(self, stage: str, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        run, trace = self, self.trace
        calls, counter = trace.calls(stage), trace.counter(stage, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                now = perf_counter()
                held = run.held_seconds  # a safe point inside the call (a pause) is not the callback's time
                if held:
                    run.held_seconds = 0.0
                if trace.listened:
                    calls.append((name, now - began - held))
                else:
                    counter[0] += 1
                    counter[1] += now - began - held
                if now >= trace.next_show:
                    trace.enter(stage, now)
                if now >= trace.next_flush:
                    trace.flush(now)

        return timed

    def _watched_step(self, training_step: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                loss = training_step(*args, **kwargs)
            except BaseException as error:
                self.finish(error)  # the Trainer has no failure callback; the exception goes on up
                raise
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                self._losses.append(loss.detach())
            return loss

        return watched

    # --- commands ----------------------------------------------------------------------------------
    def extra_commands(self) -> Iterable[Command]:
        for callback in self.handler.callbacks if self.handler is not None else ():
            declared = getattr(callback, "commands", None)
            if callable(declared):
                yield from declared()

    def validate(self) -> str:
        if self.trainer is None:
            raise CommandRejected("the Trainer was not found, so whether it has an eval_dataset cannot be checked")
        if self.trainer.eval_dataset is None:
            raise CommandRejected("this Trainer has no eval_dataset")
        self.flags.should_evaluate = True
        return (f"evaluating at the end of this step (step {self.iter}); the metrics follow as val/ scalars and in "
                "the log")

    def save_checkpoint(self, reason: str) -> str:
        self.flags.should_save = True
        return f"saving {self.output_dir / f'checkpoint-{self.iter}'} at the end of this step"

    def end_training(self, reason: str) -> None:
        self.flags.should_training_stop = True

    def resume_description(self) -> str:
        return "how to continue from a checkpoint (the Trainer restores one only when train() starts)"

    def resume(self, which: str, *trust: str) -> str:
        folders = sorted(self.output_dir.glob("checkpoint-*"), key=lambda p: _step_of(p.name))
        best = self.state.best_model_checkpoint
        path = resolve_checkpoint(which, [str(p) for p in folders], latest=folders[-1] if folders else None,
                                  best=best, folders=[self.output_dir])
        raise CommandRejected(f"the Trainer restores a checkpoint only when train() starts, so it cannot be loaded "
                              f"into this run; stop this run (stop), then call "
                              f"trainer.train(resume_from_checkpoint={str(path)!r})")

    def lr_targets(self) -> list[tuple[list[dict[str, Any]], list[Any]]]:
        optimizer, scheduler = self.kwargs.get("optimizer"), self.kwargs.get("lr_scheduler")
        if optimizer is None:
            return []
        return [(optimizer.param_groups, [scheduler] if scheduler is not None else [])]

    def broadcast(self, obj: Any) -> Any:
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([obj], from_process=0)[0]

    # --- what the callback reports -------------------------------------------------------------------
    def step_began(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self._losses = []
        self._step_started = perf_counter()
        self._iter_pending = self._began_at = self.state.global_step
        optimizer = kwargs.get("optimizer")
        self._lr = optimizer.param_groups[0]["lr"] if optimizer is not None else None

    def step_ended(self, control: Any, kwargs: dict[str, Any]) -> None:
        """The step is done (``global_step`` counts it): keep its losses, lr and time for the next tick; then the
        safe point.

        The losses stay tensors until then: reading them (``.item()``) would wait for the device every step.
        """
        self.flags, self.kwargs = control, kwargs
        now = perf_counter()
        self._steps.append((self._began_at, self.state.global_step, self._losses, self._lr, now - self._step_started))
        self._losses = []
        if now >= self.next_tick:
            self.tick(now)
        self.safe_point()
        if control.should_evaluate:
            self.validating(True)

    def publish_batched(self) -> None:
        """The steps' loss, lr and time since the last call, each at its step."""
        steps, self._steps = self._steps, []
        if not steps:
            return
        losses = read_floats([loss for _, _, step_losses, _, _ in steps for loss in step_losses])
        hub = self.message_hub
        for began_at, done, step_losses, lr, seconds in steps:
            step = max(0, done - 1)  # the step it made (as a Cockpit run plots it)
            if lr is not None:
                hub.update_scalar("train/lr", lr, began_at)
            if step_losses:
                # The step's loss as the Trainer sums it for its logs: over the step's micro-batches.
                hub.update_scalar("train/loss", sum(next(losses) for _ in step_losses), step)
            hub.update_scalar("train/time", seconds, step)

    def logged(self, logs: dict[str, Any]) -> None:
        numbers, summary = {}, {}
        for name, value in logs.items():
            key = metric_key(name)
            if key is None:
                if name in SUMMARY_KEYS:
                    summary[name] = value
                continue
            if key in ("train/loss", "train/lr") and self.trainer is not None:
                continue  # every step's own value is published already
            numbers[key] = value
        step = self.iter if any(k.startswith("val/") for k in numbers) else max(0, self.iter - 1)
        self.scalars(numbers, step)
        if summary:
            self.message_hub.update_info("train_summary", summary)
        # To the views' log only: the Trainer prints its logs on the console itself.
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
        self.message_hub.log("INFO", f"step {self.iter}: {shown}")

    def saved(self) -> None:
        folder = self.output_dir / f"checkpoint-{self.iter}"
        if self.main and folder.exists():
            self.checkpoint_saved(folder)
        self.forget_removed_checkpoints()


def _overrides(callback: Any, stage: str) -> bool:
    return getattr(type(callback), stage, None) is not getattr(TrainerCallback, stage, None)


def _step_of(name: str) -> int:
    tail = name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


class CockpitCallback(TrainerCallback):
    """Serves a Trainer's run to Cockpit's views and applies their commands (see the module's docstring).

    Args:
        work_dir: where run folders go (``args.output_dir`` by default).
        listen: ``'HOST:PORT'`` to serve over TCP (CURVE-encrypted, keys in the connection file)
            instead of private Unix sockets.
        experiment_name: the run's name (``<script>_<timestamp>`` by default).
    """

    def __init__(self, work_dir: str | Path | None = None, listen: str | None = None,
                 experiment_name: str | None = None) -> None:
        self.work_dir, self.listen, self.experiment_name = work_dir, listen, experiment_name
        self.run: HFRun | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        handler, trainer = find_trainer(self)
        run = self.run = HFRun(args, state, handler, trainer, self.work_dir, self.listen, self.experiment_name)
        run.flags, run.kwargs = control, kwargs
        rows = run.hook_rows()
        run.trace.publish_table(rows)
        run.install()
        order = "\n".join(f"{stage}: {', '.join(name for _, _, name in entries)}" for stage, entries in rows if entries)
        run.keep_log_file(f"Callbacks will be called in the following order:\n{order}")
        run.start({"epoch": run.epoch, "iter": run.iter, "max_epochs": run.max_epochs, "max_iters": run.max_iters,
                   "loop_stage": "train"})
        if trainer is None:
            run.logger.warning("cockpit: the Trainer was not found from its callback; no per-call timings, per-step "
                               "losses or validation on demand")

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run.progress(epoch=self.run.epoch)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run.step_began(kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.run.step_ended(control, kwargs)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_evaluate:
            self.run.validating(True)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.run is not None and not self.run.finished and logs:
            self.run.logged(logs)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if self.run is not None and not self.run.finished:
            self.run.validating(False)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None:
            self.run.saved()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None:
            self.run.progress(epoch=self.run.epoch, iter=self.run.iter)
            self.run.finish()


__all__ = ["CockpitCallback", "HFRun", "find_trainer", "metric_key"]
