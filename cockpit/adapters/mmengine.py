"""MMEngine: ``CockpitHook`` serves an unmodified ``mmengine.runner.Runner`` to Cockpit's views.

Two lines in the config::

    custom_imports = dict(imports=['cockpit.adapters.mmengine'], allow_failed_imports=False)
    custom_hooks = [dict(type='CockpitHook')]

Importing this module registers ``CockpitHook`` in MMEngine's ``HOOKS`` registry. When the run
starts (``before_run``) the hook serves it from MMEngine's own run folder
(``work_dir/<timestamp>/``, beside its log), so ``cockpit attach work_dir`` finds it. It publishes:

- the scalars of MMEngine's message hub (``train/loss``, ``train/lr``, ``train/time``...) of every
  iteration, each at its iteration, and the validation and test metrics;
- the hook table in MMEngine's priority order, and every hook call's duration (the hook calls
  ``runner.call_hook`` makes, dispatched the same way, worked out once per stage).

Per iteration the hook only notes these (the last value of each scalar that changed, each call's
duration); they are published a few times a second (``AdaptedRun.tick``), each value at its own
iteration, so a view is at most a tick behind. It also publishes:

- every checkpoint ``runner.save_checkpoint`` writes, and those rotation deletes;
- the run's status (running, validating, paused, stopped, finished, failed).

Commands are applied in the training thread after each iteration's ``after_train_iter`` hooks
(and after ``after_train_epoch``): ``val`` runs the val loop now, ``save`` writes ``iter_<N>.pth``
(``epoch_<N>.pth`` at an epoch's end) and moves ``last_checkpoint``, ``stop`` saves and leaves the
train loop, ``set`` scales the lr schedulers' ``base_values`` with the lr, ``resume`` loads a
checkpoint in place (``runner.resume``; an epoch-based loop restarts the checkpoint's epoch from
its first batch, as MMEngine's own resume does). Hooks that have a ``commands()`` method offer
their commands (``cockpit.commands.Command``); a handler gets this run (``run.runner`` is
MMEngine's runner, ``run.message_hub`` Cockpit's hub).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from time import perf_counter
from types import SimpleNamespace
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.base_loop import BaseLoop
from mmengine.runner.loops import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.priority import Priority, get_priority

from cockpit.adapters.base import AdaptedRun, HookEntry, resolve_checkpoint
from cockpit.commands import TRUST, Command, CommandRejected

#: Stages after which commands are applied (the training thread's safe points).
SAFE_STAGES = frozenset({"after_train_iter", "after_train_epoch"})


class _EndEpoch(Exception):  # noqa: N818 - control flow, not an error
    """Leaves an epoch-based loop's epoch part-way (after a resume); caught by the loop's ``run_epoch``."""


class _EndTraining(Exception):  # noqa: N818 - control flow, not an error
    """Leaves an epoch-based train loop at once (a stop); caught by the loop's ``run``."""


class _LrBase:
    """An MMEngine lr scheduler as ``cockpit.commands`` sees a torch one: ``base_values`` as ``base_lrs``."""

    def __init__(self, target: Any) -> None:
        self._target = target

    @property
    def base_lrs(self) -> list[float]:
        return list(self._target.base_values)

    @base_lrs.setter
    def base_lrs(self, values: list[float]) -> None:
        self._target.base_values = list(values)


class MMEngineRun(AdaptedRun):
    """An MMEngine runner's run, served to Cockpit's views.

    Args:
        runner: the MMEngine runner (its ``before_run`` is under way).
        listen: ``'HOST:PORT'`` to serve over TCP instead of private Unix sockets.
    """

    framework = "mmengine"
    resumes_in_place = True

    def __init__(self, runner: Any, listen: str | None = None) -> None:
        super().__init__(work_dir=runner.work_dir, log_dir=runner.log_dir, timestamp=runner.timestamp,
                         experiment_name=runner.experiment_name, logger=runner.logger, rank=runner.rank,
                         world_size=runner.world_size, listen=listen)
        if getattr(runner.cfg, "filename", None):
            self.cfg = SimpleNamespace(filename=str(Path(runner.cfg.filename).resolve()))
        self.runner = runner
        # Per stage: the hooks that override it, as ``(name, hook, method, the hub's counter)``, and the trace's
        # list for its calls.
        self._entries: dict[str, tuple[tuple[tuple[str, Any, Callable[..., Any], list[float]], ...], list[Any]]] = {}
        self._hooks_seen: list[Any] = []
        self._trains = False  # the runner trains (its train loop was built when the run started)
        self._loop: Any = None
        self._scalars: Any = runner.message_hub.log_scalars  # MMEngine's hub's, by key
        self._depth = 0  # nested call_hook calls (a checkpoint saved inside after_train_iter...)
        self._iter_end = False  # after after_train_iter, before the loop counts the iteration
        self._raise: BaseException | None = None  # raised after the safe point (leaving an epoch or the loop)
        # MMEngine's ``train/`` scalars, kept per iteration and published at each tick (``publish_batched``):
        self._scalar_count = -1  # how many keys MMEngine's hub had when ``_keys`` was made
        self._keys: list[str] = []  # its ``train/`` keys
        self._seen: list[Any] = []  # per key, its history array at the last iteration's end
        self._marks: list[tuple[int, list[tuple[str, Any]]]] = []  # (iteration, (key, last value) of those changed)
        self._check_removed = False  # a checkpoint was saved: rotation may have deleted an older one

    # --- where the run is -------------------------------------------------------------------------
    @property
    def loop(self) -> Any:
        """The train loop, if this runner trains (built: reading ``runner.train_loop`` would build it)."""
        loop = getattr(self.runner, "_train_loop", None)
        return loop if isinstance(loop, BaseLoop) else None

    epoch = property(lambda self: self.runner.epoch)
    iter = property(lambda self: self.runner.iter + (1 if self._iter_end else 0),
                    doc="Iterations done (MMEngine counts an iteration only after its after_train_iter hooks).")
    max_epochs = property(lambda self: getattr(self.loop, "max_epochs", None))
    max_iters = property(lambda self: getattr(self.loop, "max_iters", None))

    # --- taking over the runner's entry points ----------------------------------------------------
    def install(self) -> None:
        """Time the hooks, note checkpoints, and give the train loop its safe points (until the run ends)."""
        runner = self.runner
        self.patch(runner, "call_hook", self._call_hook)
        self.patch(runner, "save_checkpoint", self._noting_saves(runner.save_checkpoint))
        loop = self._loop = self.loop  # built before before_run, kept for the run
        self._trains = loop is not None
        if loop is not None:
            self.patch(loop, "run", self._guarded_run(loop.run))
            if isinstance(loop, EpochBasedTrainLoop):
                self.patch(loop, "run_epoch", self._leavable_epoch(loop.run_epoch))
        self.publish_hooks()

    def publish_hooks(self) -> None:
        names = self._names()
        rows = []
        for stage in Hook.stages:
            entries: list[HookEntry] = []
            for hook, name in zip(self.runner.hooks, names, strict=True):
                if stage in hook.get_triggered_stages():
                    value = get_priority(hook.priority)
                    label = next((p.name for p in Priority if p.value == value), str(value))
                    entries.append((label, value, name))
            rows.append((stage, entries))
        self.trace.publish_table(rows)

    def _names(self) -> list[str]:
        counts: dict[str, int] = {}
        names = []
        for hook in self.runner.hooks:
            name = type(hook).__name__
            counts[name] = counts.get(name, 0) + 1
            names.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
        return names

    def _stage_entries(self, stage: str) -> tuple[tuple[tuple[str, Any, Callable[..., Any], list[float]], ...],
                                                  list[Any]]:
        hooks = self.runner.hooks
        if hooks != self._hooks_seen:  # a hook was registered since: work the table out again
            self._hooks_seen, self._entries = list(hooks), {}
            self.publish_hooks()
        if stage in Hook.stages:
            chosen = [(n, h) for n, h in zip(self._names(), hooks, strict=True) if stage in h.get_triggered_stages()]
        else:  # a custom stage: every hook that has such a method, as MMEngine does
            chosen = [(n, h) for n, h in zip(self._names(), hooks, strict=True) if hasattr(h, stage)]
        trace = self.trace
        entries = self._entries[stage] = (tuple((n, h, getattr(h, stage), trace.counter(stage, n)) for n, h in chosen),
                                          trace.calls(stage))
        return entries

    def _call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """``runner.call_hook``: the hooks that override ``fn_name``, in priority order, each timed.

        A hook that does not override a stage would do nothing there, so it is not called (MMEngine
        calls its no-op method). After the training iteration's and epoch's last hooks, the safe point.
        This runs twice an iteration: while a view listens, the calls wait in the trace's list, published a few
        times a second; else each is added to its hook's counter in the hub.
        """
        outer = self._depth == 0
        if outer:
            self._iter_end = fn_name == "after_train_iter"
        runner, trace = self.runner, self.trace
        cached = self._entries.get(fn_name)
        entries, calls = cached if cached is not None and runner.hooks == self._hooks_seen \
            else self._stage_entries(fn_name)
        self._depth += 1
        try:
            # One clock reading per hook: each call ends where the next begins.
            began = perf_counter()
            if began >= trace.next_show:
                trace.enter(fn_name, began)
            listened = trace.listened
            for name, hook, method, counter in entries:
                try:
                    method(runner, **kwargs)
                except TypeError as error:  # as MMEngine: say which hook
                    raise TypeError(f"{error} in {hook}") from None
                now = perf_counter()
                if listened:
                    calls.append((name, now - began))
                else:
                    counter[0] += 1
                    counter[1] += now - began
                began = now
            if began >= trace.next_flush:
                trace.flush(began)
            if outer and self._trains and fn_name in SAFE_STAGES:
                self.safe_point()
        finally:
            self._depth -= 1
        if outer and self._raise is not None:
            error, self._raise = self._raise, None
            raise error

    def serve_safe_point(self) -> None:
        self._depth += 1  # what commands run (a val loop) is nested in this stage
        try:
            super().serve_safe_point()
        finally:
            self._depth -= 1

    def tick(self, now: float | None = None) -> None:
        super().tick(now)
        self._forget_removed()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self._forget_removed()
        super().finish(error)

    def _forget_removed(self) -> None:
        if self._check_removed:  # a checkpoint was saved since: rotation may have deleted an older one
            self._check_removed = False
            self.forget_removed_checkpoints()

    def _noting_saves(self, save: Callable[..., Any]) -> Callable[..., Any]:
        def save_checkpoint(out_dir: str, filename: str, *args: Any, **kwargs: Any) -> Any:
            runner = self.runner
            by_epoch = kwargs.get("by_epoch", args[4] if len(args) > 4 else True)
            meta = kwargs.get("meta") or (args[3] if len(args) > 3 else None) or {}
            # Where MMEngine's Runner.save_checkpoint says the checkpoint resumes.
            epoch = meta.get("epoch", runner.epoch + 1 if by_epoch else runner.epoch)
            iteration = meta.get("iter", runner.iter if by_epoch else runner.iter + 1)
            result = save(out_dir, filename, *args, **kwargs)
            if self.main:
                self.checkpoint_saved(os.path.join(out_dir, filename), epoch, iteration)
                self._check_removed = True
            return result

        return save_checkpoint

    def _guarded_run(self, run: Callable[[], Any]) -> Callable[[], Any]:
        def guarded() -> Any:
            try:
                return run()
            except _EndTraining:
                loop = self.loop
                if self._iter_end:  # left from after_train_iter: the loop never counted that iteration
                    loop._iter += 1
                    self._iter_end = False
                self.runner.call_hook("after_train")
                return self.runner.model
            except BaseException as error:
                self.finish(error)
                raise

        return guarded

    def _leavable_epoch(self, run_epoch: Callable[[], None]) -> Callable[[], None]:
        def leavable() -> None:
            try:
                run_epoch()
            except _EndEpoch:
                self._iter_end = False  # resume set the epoch and iteration counters itself

        return leavable

    # --- commands -----------------------------------------------------------------------------------
    def extra_commands(self) -> Iterable[Command]:
        for hook in self.runner.hooks:
            declared = getattr(hook, "commands", None)
            if callable(declared):
                yield from declared()

    def validate(self) -> str:
        runner = self.runner
        if runner.val_loop is None:
            raise CommandRejected("this run has no validation (val_dataloader, val_evaluator and val_cfg are not set)")
        metrics = runner.val_loop.run()
        runner.model.train()  # the train loop sets train mode once per epoch, not per iteration
        return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()) \
            or "validation ran (no metrics)"

    def _out_dir(self) -> str:
        hook = next((h for h in self.runner.hooks if type(h).__name__ == "CheckpointHook"), None)
        out_dir = getattr(hook, "out_dir", None)
        return str(out_dir) if out_dir else str(self.runner.work_dir)

    def save_checkpoint(self, reason: str) -> str:
        runner, loop = self.runner, self.loop
        epoch_end = isinstance(loop, EpochBasedTrainLoop) and not self._iter_end
        filename = f"epoch_{runner.epoch + 1}.pth" if epoch_end else f"iter_{self.iter}.pth"
        out_dir = self._out_dir()
        runner.save_checkpoint(out_dir, filename, save_optimizer=True, save_param_scheduler=True, by_epoch=epoch_end)
        path = Path(out_dir, filename)
        if self.main:
            # MMEngine's pointer for resume=True, moved once the file is complete.
            pointer = Path(runner.work_dir, "last_checkpoint")
            tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}")
            tmp.write_text(str(path))
            os.replace(tmp, pointer)
        message = f"saved {path}"
        if isinstance(loop, EpochBasedTrainLoop) and not epoch_end:
            message += f" (mid-epoch: MMEngine resumes it from the start of epoch {runner.epoch + 1})"
        return message

    def end_training(self, reason: str) -> None:
        loop = self.loop
        if isinstance(loop, EpochBasedTrainLoop) and self._iter_end:
            self._raise = _EndTraining()  # MMEngine's stop_training is read only between epochs
        elif loop is not None:
            loop.stop_training = True

    def resume(self, which: str, *trust: str) -> str:
        runner, loop = self.runner, self.loop
        if not isinstance(loop, (EpochBasedTrainLoop, IterBasedTrainLoop)):
            raise CommandRejected(f"resuming in place needs MMEngine's EpochBasedTrainLoop or IterBasedTrainLoop, "
                                  f"not {type(loop).__name__}; restart with resume=True, load_from=<checkpoint>")
        path = self._resolve(which)
        before = self.iter
        self.publish_batched()  # the iterations that ran before the checkpoint is loaded
        with self._loading(which, TRUST in trust):
            runner.resume(str(path))
        self._take_keys(restored=True)  # the restored histories are not new values
        epoch, done = loop._epoch, loop._iter
        if isinstance(loop, EpochBasedTrainLoop):
            self._raise = _EndEpoch()  # the checkpoint's epoch starts again from its first batch
            note = f"; epoch {epoch + 1} starts from its first batch"
        else:
            loop._iter = done - 1  # the loop counts the iteration that just ended
            note = self._restart_data(loop, done)
        self.message_hub.add_marker("resume", done, f"resumed from {path.name}")
        self.progress(epoch=epoch, iter=done)
        return f"resumed from {path.name}: iter {before} -> {done} (epoch {epoch}){note}"

    def _resolve(self, which: str) -> Path:
        work_dir, out_dir = Path(self.runner.work_dir), Path(self._out_dir())
        pointer = work_dir / "last_checkpoint"
        latest = pointer.read_text().strip() if pointer.exists() else None
        known = [c["path"] for c in self.message_hub.checkpoints]
        known += [str(p) for folder in {work_dir, out_dir} for p in folder.glob("*.pth")]
        best = self.runner.message_hub.get_info("best_ckpt")
        return resolve_checkpoint(which, known, latest=latest, best=best, folders=[out_dir, work_dir])

    @contextlib.contextmanager
    def _loading(self, which: str, trusted: bool) -> Iterator[None]:
        """MMEngine 0.10 loads checkpoints with torch.load's defaults, which torch >= 2.6 refuses for its
        own files (they hold pickled objects): with ``trust``, this one load may run any pickle."""
        previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        if trusted:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            yield
        except (pickle.UnpicklingError, OSError, KeyError, RuntimeError) as error:
            message = f"cannot resume from it: {type(error).__name__}: {str(error).splitlines()[0]}"
            if "weights_only" in str(error) or "Weights only" in str(error):
                message = (f"torch refuses to load this MMEngine checkpoint with weights_only=True (it holds pickled "
                           f"objects); to load it anyway, only if you trust the file, send: resume {which} {TRUST} "
                           "(or start the run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1)")
            raise CommandRejected(message) from None
        finally:
            if trusted:
                if previous is None:
                    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
                else:
                    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous

    @staticmethod
    def _restart_data(loop: Any, done: int) -> str:
        """Position an iteration-based loop's data where MMEngine's own resume would: a fresh iterator, advanced
        ``done`` batches. Returns a note for the outcome if that was not possible."""
        sampler = getattr(loop.dataloader, "sampler", None)
        try:
            if hasattr(sampler, "_indices_of_rank"):
                # InfiniteSampler keeps one index stream for its life; a new iterator needs a new stream
                # (made before the old iterator goes, whose end would close the stream it holds).
                sampler.indices = sampler._indices_of_rank()
            elif hasattr(sampler, "set_epoch"):
                sampler.set_epoch(0)
            loop.dataloader_iterator = type(loop.dataloader_iterator)(loop.dataloader)
            for _ in range(done):
                next(loop.dataloader_iterator)
        except Exception as error:  # noqa: BLE001 - the state is restored; only the data order differs
            return f"; the data goes on where it was (repositioning failed: {type(error).__name__}: {error})"
        return ""

    def lr_targets(self) -> list[tuple[list[dict[str, Any]], list[Any]]]:
        runner = self.runner
        wrapper = runner.optim_wrapper
        if wrapper is None or isinstance(wrapper, dict):
            return []
        wrappers = dict(wrapper.optim_wrappers) if hasattr(wrapper, "optim_wrappers") else {None: wrapper}
        schedulers = runner.param_schedulers or []
        targets = []
        for name, each in wrappers.items():
            mine = schedulers.get(name, []) if isinstance(schedulers, dict) else schedulers
            lr_schedulers = [_LrBase(s) for s in mine if getattr(s, "param_name", None) == "lr"]
            targets.append((each.param_groups, lr_schedulers))
        return targets

    def broadcast(self, obj: Any) -> Any:
        from mmengine.dist import broadcast_object_list

        box = [obj]
        broadcast_object_list(box, src=0)
        return box[0]

    # --- what the hook reports --------------------------------------------------------------------------
    def iteration_ended(self) -> None:
        """An iteration ended (its ``after_train_iter`` hooks ran): keep the last value of each of MMEngine's
        ``train/`` scalars that changed during it, for the next tick to publish at that iteration (``runner.iter``,
        which the loop has not counted yet).

        MMEngine's ``HistoryBuffer`` makes a new array, the whole history, with every value: a new array is a new
        value. Only the value is kept, never the array: the arrays of a tick's hundred iterations, kept until the
        tick, cost the step more than everything else the adapter does (memory the allocator cannot reuse).
        """
        step = self._loop.iter if self._loop is not None else self.runner.iter
        scalars = self._scalars
        if len(scalars) != self._scalar_count:
            self._take_keys()
        seen, changed = self._seen, []
        for index, key in enumerate(self._keys):
            history = scalars[key].data[0]
            if history is not seen[index]:
                seen[index] = history
                if len(history):
                    changed.append((key, history[-1]))
        if changed:
            self._marks.append((step, changed))
        self._iter_pending = step
        now = perf_counter()
        if now >= self.next_tick:
            self.tick(now)

    def _take_keys(self, restored: bool = False) -> None:
        """The ``train/`` keys of MMEngine's hub, as they are now (``restored``: its histories are not news)."""
        scalars = self._scalars = self.runner.message_hub.log_scalars
        before = dict(zip(self._keys, self._seen, strict=True))
        self._scalar_count = len(scalars)
        self._keys = [key for key in scalars if key.startswith("train/")]
        self._seen = [scalars[key].data[0] if restored else before.get(key) for key in self._keys]

    def publish_batched(self) -> None:
        """MMEngine's ``train/`` scalars kept since the last call: each key's last value in every iteration that
        changed it, at that iteration."""
        marks, self._marks = self._marks, []
        update = self.message_hub.update_scalar
        for step, changed in marks:
            for key, value in changed:
                update(key, float(value), step)


@HOOKS.register_module()
class CockpitHook(Hook):
    """Serves the run to Cockpit's views and applies their commands (see the module's docstring).

    Args:
        listen: ``'HOST:PORT'`` to serve over TCP (CURVE-encrypted, keys in the connection file)
            instead of private Unix sockets.
    """

    priority = "LOWEST"  # after the hooks that fill MMEngine's message hub

    def __init__(self, listen: str | None = None) -> None:
        self.listen = listen
        self.run: MMEngineRun | None = None

    def before_run(self, runner: Any) -> None:
        self.run = MMEngineRun(runner, listen=self.listen)
        self.run.install()
        self.run.start()

    def after_run(self, runner: Any) -> None:
        if self.run is not None:
            self.run.finish()

    def before_train(self, runner: Any) -> None:
        self.run.progress(loop_stage="train", epoch=runner.epoch, iter=runner.iter, max_epochs=runner.max_epochs,
                          max_iters=runner.max_iters)

    def after_train(self, runner: Any) -> None:
        self.run.progress(epoch=runner.epoch, iter=runner.iter)

    def before_train_epoch(self, runner: Any) -> None:
        self.run.progress(epoch=runner.epoch)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.run.iteration_ended()

    def before_val(self, runner: Any) -> None:
        self.run.validating(True)

    def after_val(self, runner: Any) -> None:
        self.run.validating(False)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        self._metrics("val", metrics)

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        self._metrics("test", metrics)

    def _metrics(self, mode: str, metrics: dict[str, Any] | None) -> None:
        run = self.run
        numbers = {}
        for key, value in (metrics or {}).items():
            try:
                numbers[f"{mode}/{key}"] = float(value)
            except (TypeError, ValueError):
                run.message_hub.update_info(f"{mode}/{key}", repr(value))
        run.scalars(numbers, run.iter)


__all__ = ["CockpitHook", "MMEngineRun"]
