"""``RuntimeInfoHook``: keeps the hub's runtime info and the step's scalars current."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from cockpit.events import Status
from cockpit.hooks.base import DataBatch, Hook
from cockpit.optim import OptimWrapper
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    if callable(numel):
        return numel() == 1
    return isinstance(numel, int) and numel == 1


#: A reader of the step's logged values: called with the runner, the step and its values as floats.
Reader = Callable[[Any, int, dict[str, float]], None]
#: With a view listening, the step's values reach the hub at least this often (seconds).
_VIEW_PERIOD = 0.1


class RuntimeInfoHook(Hook):
    """Writes epoch, iter, maxima, loop stage, learning rate and the step's logged values to the hub.

    The keys follow MMEngine: info ``epoch``, ``iter``, ``max_epochs``, ``max_iters``,
    ``loop_stage``; scalars ``train/lr``, ``train/<loss key>``, ``val/<metric>``, ``test/<metric>``.

    The step's logged values (``train_step``'s tensors, and the wrapper's gradient norm) are kept
    as tensors and published together, each at its own step, with one device-to-host transfer, when
    someone reads them: a log line (a hook's ``log_point``), a checkpoint, the end of an epoch or of
    training, validation, a reader's bounded interval (the health guard's), a view (every 100 ms), or
    a key seen for the first time (so the hub's keys keep MMEngine's order). A hook that may read
    them at every iteration (``reads_every_iteration``, true for hooks not Cockpit's own) gets them
    at every iteration, as before. Between those points a training step makes no host-device sync.
    """

    priority = Priority.VERY_HIGH
    reads_every_iteration = False

    def __init__(self) -> None:
        self.last_loop_stage: str | None = None
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._known: set[str] = set()
        self._readers: list[Reader] = []
        self._bound = 0  # publish at least every this many steps (0: no bound)
        self._every_iteration = True
        self._log_points: list[Callable[[Any, int], bool]] = []
        self._published_at = 0.0

    def add_reader(self, reader: Reader, interval: int) -> None:
        """Call ``reader`` with each step's values as they are published, at most ``interval`` steps late."""
        self._readers.append(reader)
        self._bound = min(self._bound or interval, interval)

    def remove_reader(self, reader: Reader) -> None:
        self._readers = [r for r in self._readers if r is not reader]
        if not self._readers:
            self._bound = 0

    def publish(self, runner: RunContext) -> None:
        """Publish the kept values to the hub and the readers now (one transfer for all of them)."""
        pending, self._pending = self._pending, []
        self._published_at = time.perf_counter()
        settle = getattr(runner.optim_wrapper, "settle", None)
        if settle is not None:
            settle()  # the wrapper's device-side skip flags, read in the same breath
        if pending:
            hub = runner.message_hub
            for step, values in _as_floats(pending):
                for key, value in values.items():
                    hub.update_scalar(f"train/{key}", value, step=step)
                for reader in self._readers:
                    reader(runner, step, values)
        self._note_skipped(runner)

    def before_run(self, runner: RunContext) -> None:
        runner.message_hub.update_info_dict({
            "experiment_name": runner.experiment_name,
            "seed": runner.seed,
            "work_dir": runner.work_dir,
            "log_dir": runner.log_dir,
        })
        self.last_loop_stage = None

    def before_train(self, runner: RunContext) -> None:
        self._pending = []
        hooks = getattr(runner, "hooks", ())
        iteration_stages = {"before_train_iter", "after_train_iter"}
        self._every_iteration = any(h.reads_every_iteration and iteration_stages & set(h.get_triggered_stages())
                                    for h in hooks)
        self._log_points = [h.log_point for h in hooks if callable(getattr(h, "log_point", None))]
        hub = runner.message_hub
        hub.update_info("loop_stage", "train")
        hub.update_info("epoch", runner.epoch)
        hub.update_info("iter", runner.iter)
        hub.update_info("max_epochs", runner.max_epochs)
        hub.update_info("max_iters", runner.max_iters)
        hub.update_info("config", _settings(runner))
        meta = getattr(runner.train_dataloader.dataset, "metainfo", None)
        if meta is not None:
            hub.update_info("dataset_meta", meta)

    def after_train(self, runner: RunContext) -> None:
        self.publish(runner)
        runner.message_hub.pop_info("loop_stage")

    def after_train_epoch(self, runner: RunContext) -> None:
        self.publish(runner)

    def before_save_checkpoint(self, runner: RunContext, checkpoint: dict) -> None:
        # The checkpoint's copy of the hub was taken before this stage: take it again with them.
        if self._pending:
            self.publish(runner)
            if "message_hub" in checkpoint:
                checkpoint["message_hub"] = runner.message_hub.state_dict()

    def before_train_epoch(self, runner: RunContext) -> None:
        runner.message_hub.update_info("epoch", runner.epoch)

    def before_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        hub = runner.message_hub
        hub.update_info("iter", runner.iter)
        wrapper = runner.optim_wrapper
        if type(wrapper).get_lr is OptimWrapper.get_lr:  # the common case, without building get_lr()'s dict
            hub.update_scalar("train/lr", float(wrapper.optimizer.param_groups[0]["lr"]))
            return
        for name, lrs in wrapper.get_lr().items():
            hub.update_scalar(f"train/{name}", lrs[0])

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        wrapper = runner.optim_wrapper
        norm = getattr(wrapper, "last_grad_norm", None)
        if outputs or norm is not None:
            values = dict(outputs) if outputs else {}
            if norm is not None:
                values["grad_norm"] = norm
                wrapper.last_grad_norm = None
            self._pending.append((runner.iter, values))
            if self._due(runner, batch_idx, values):
                self.publish(runner)
                return
        self._note_skipped(runner)

    def _due(self, runner: RunContext, batch_idx: int, values: dict[str, Any]) -> bool:
        """Whether someone reads the kept values after this step."""
        if self._every_iteration or not self._known.issuperset(values):
            self._known.update(values)
            return True
        if 0 < self._bound <= len(self._pending):
            return True
        for log_point in self._log_points:
            if log_point(runner, batch_idx):
                return True
        return runner.message_hub.has_subscribers and time.perf_counter() - self._published_at >= _VIEW_PERIOD

    def _note_skipped(self, runner: RunContext) -> None:
        skipped = getattr(runner.optim_wrapper, "skipped_steps", 0)
        if skipped != runner.message_hub.get_info("skipped_steps", 0):
            runner.message_hub.update_info("skipped_steps", skipped)
            runner.logger.warning(f"skipped a step with a non-finite loss at iter {runner.iter + 1} "
                                  f"({skipped} skipped so far)")

    def before_val(self, runner: RunContext) -> None:
        self.publish(runner)
        self.last_loop_stage = runner.message_hub.get_info("loop_stage")
        runner.message_hub.update_info("loop_stage", "val")
        if runner.message_hub.status == "running":
            runner.message_hub.set_status(Status.VALIDATING)

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._metrics(runner, "val", metrics)

    def after_val(self, runner: RunContext) -> None:
        # Validation may run inside training: go back to the stage it interrupted.
        if runner.message_hub.status == "validating":
            runner.message_hub.set_status(Status.RUNNING)
        if self.last_loop_stage == "train":
            runner.message_hub.update_info("loop_stage", "train")
            self.last_loop_stage = None
        else:
            runner.message_hub.pop_info("loop_stage")

    def before_test(self, runner: RunContext) -> None:
        runner.message_hub.update_info("loop_stage", "test")

    def after_test(self, runner: RunContext) -> None:
        runner.message_hub.pop_info("loop_stage")

    def after_test_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        self._metrics(runner, "test", metrics)

    @staticmethod
    def _metrics(runner: RunContext, mode: str, metrics: dict[str, Any] | None) -> None:
        # Metrics are plotted at the number of training iterations done when they were measured.
        for key, value in (metrics or {}).items():
            if _is_scalar(value):
                runner.message_hub.update_scalar(f"{mode}/{key}", value, step=runner.iter)
            else:
                runner.message_hub.update_info(f"{mode}/{key}", value)


def _as_floats(pending: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, dict[str, float]]]:
    """Each kept step with its values as floats: every tensor among them read in one transfer.

    Tensors in the host's memory need no transfer: each is read as it is (``item()``, as MMEngine's
    hub reads them), which costs a third of stacking them first.
    """
    tensors = [value for _, values in pending for value in values.values() if isinstance(value, torch.Tensor)]
    if all(t.is_cpu for t in tensors):
        read = iter([t.item() for t in tensors])
    else:
        if not all(t.dim() == 0 and t.dtype == tensors[0].dtype for t in tensors):
            tensors = [t.reshape(()).float() for t in tensors]  # mixed shapes or dtypes: one kind for stack
        with torch.no_grad():
            read = iter(torch.stack(tensors).tolist())
    for step, values in pending:
        yield step, {key: next(read) if isinstance(value, torch.Tensor) else float(value)
                     for key, value in values.items()}


def _settings(runner: RunContext) -> dict[str, Any]:
    """The run's key settings as the overview shows them: model, optimizer and its configured lr,
    batch size and schedule (each None where the run has none)."""
    optimizer = getattr(runner.optim_wrapper, "optimizer", None)
    model = getattr(runner.model, "module", runner.model)
    cfg = getattr(runner, "cfg", None) or {}
    train_cfg = cfg.get("train_cfg") or {}
    return {
        "model": type(model).__name__,
        "optimizer": type(optimizer).__name__ if optimizer is not None else None,
        "lr": optimizer.defaults.get("lr") if optimizer is not None else None,
        "batch_size": getattr(runner.train_dataloader, "batch_size", None),
        "max_epochs": runner.max_epochs,
        "max_iters": runner.max_iters,
        "by_epoch": bool(train_cfg.get("by_epoch", "max_epochs" in train_cfg)),
        "val_interval": getattr(runner.train_loop, "val_interval", None),
    }
