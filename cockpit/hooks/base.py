"""The ``Hook`` base class: MMEngine's stages, with typed no-op methods.

A hook overrides the stages it cares about; the dispatcher works out once which
hooks override which stage, so a stage no hook overrides costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.commands import Command
    from cockpit.interface import RunContext

DataBatch = dict | tuple | list | None

#: Every stage in the order a full train-val-test run reaches them.
STAGES: tuple[str, ...] = (
    "before_run",
    "after_load_checkpoint",
    "before_train",
    "before_train_epoch",
    "before_train_iter",
    "after_train_iter",
    "after_train_epoch",
    "before_val",
    "before_val_epoch",
    "before_val_iter",
    "after_val_iter",
    "after_val_epoch",
    "after_val",
    "before_save_checkpoint",
    "after_train",
    "before_test",
    "before_test_epoch",
    "before_test_iter",
    "after_test_iter",
    "after_test_epoch",
    "after_test",
    "after_run",
)


#: MMEngine's generic methods and the stages that call them.
_GENERIC_STAGES: dict[str, tuple[str, ...]] = {
    "_before_epoch": ("before_train_epoch", "before_val_epoch", "before_test_epoch"),
    "_after_epoch": ("after_train_epoch", "after_val_epoch", "after_test_epoch"),
    "_before_iter": ("before_train_iter", "before_val_iter", "before_test_iter"),
    "_after_iter": ("after_train_iter", "after_val_iter", "after_test_iter"),
}


class Hook:
    """Base class of all hooks.

    Subclasses override any of the stage methods below and may set ``priority``
    (a ``Priority``, its name, or an int 0-100; lower runs first). A hook with
    state worth keeping across a resume returns it from ``state_dict()``.
    """

    priority: ClassVar[int | str | Priority] | int | str | Priority = Priority.NORMAL
    stages: ClassVar[tuple[str, ...]] = STAGES
    #: Whether the hook may read the step's logged values (``train/loss``...) from the message hub at
    #: every training iteration. The ``RuntimeInfoHook`` keeps them as tensors until someone needs
    #: them (reading a GPU tensor stalls the device's queue); while a hook that says True overrides
    #: ``before_train_iter`` or ``after_train_iter``, it publishes them every iteration. Cockpit's own
    #: hooks say False and say when they read instead.
    reads_every_iteration: ClassVar[bool] = True

    def before_run(self, runner: RunContext) -> None:
        """Once, before any loop runs."""

    def after_run(self, runner: RunContext) -> None:
        """Once, after all loops ran (also after a failure)."""

    def before_train(self, runner: RunContext) -> None:
        """Before the train loop starts."""

    def after_train(self, runner: RunContext) -> None:
        """After the train loop ends."""

    def before_val(self, runner: RunContext) -> None:
        """Before a validation loop starts."""

    def after_val(self, runner: RunContext) -> None:
        """After a validation loop ends."""

    def before_test(self, runner: RunContext) -> None:
        """Before the test loop starts."""

    def after_test(self, runner: RunContext) -> None:
        """After the test loop ends."""

    def before_save_checkpoint(self, runner: RunContext, checkpoint: dict) -> None:
        """Before a checkpoint is written; may add entries to ``checkpoint``."""

    def after_load_checkpoint(self, runner: RunContext, checkpoint: Mapping[str, Any]) -> None:
        """After a checkpoint was loaded for a resume or ``load_from``."""

    def before_train_epoch(self, runner: RunContext) -> None:
        """Before each training epoch (once for iteration-based training)."""
        self._before_epoch(runner, mode="train")

    def before_val_epoch(self, runner: RunContext) -> None:
        """Before each validation epoch."""
        self._before_epoch(runner, mode="val")

    def before_test_epoch(self, runner: RunContext) -> None:
        """Before each test epoch."""
        self._before_epoch(runner, mode="test")

    def after_train_epoch(self, runner: RunContext) -> None:
        """After each training epoch (once for iteration-based training)."""
        self._after_epoch(runner, mode="train")

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        """After each validation epoch, with the computed metrics."""
        self._after_epoch(runner, mode="val")

    def after_test_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        """After each test epoch, with the computed metrics."""
        self._after_epoch(runner, mode="test")

    def before_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each training iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="train")

    def before_val_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each validation iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="val")

    def before_test_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each test iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="test")

    def after_train_iter(
        self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None, outputs: dict | None = None
    ) -> None:
        """After each training iteration, with the step's outputs (the losses, as tensors)."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="train")

    def after_val_iter(
        self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None, outputs: Sequence | None = None
    ) -> None:
        """After each validation iteration, with the model's predictions."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="val")

    def after_test_iter(
        self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None, outputs: Sequence | None = None
    ) -> None:
        """After each test iteration, with the model's predictions."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="test")

    def commands(self) -> list[Command]:
        """Commands this hook offers to views and ``cockpit ctl`` (applied at safe points)."""
        return []

    def state_dict(self) -> dict[str, Any] | None:
        """State to keep in checkpoints, or None for a stateless hook."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    # --- MMEngine's generic methods: one override serves the train, val and test stages ------------
    def _before_epoch(self, runner: RunContext, mode: str = "train") -> None:
        """Before each epoch of ``mode`` (``'train'``, ``'val'`` or ``'test'``)."""

    def _after_epoch(self, runner: RunContext, mode: str = "train") -> None:
        """After each epoch of ``mode``."""

    def _before_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                     mode: str = "train") -> None:
        """Before each iteration of ``mode``."""

    def _after_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                    outputs: Any = None, mode: str = "train") -> None:
        """After each iteration of ``mode``."""

    def get_triggered_stages(self) -> list[str]:
        """The stages this hook acts at, in stage order: those it overrides, directly or generically."""
        cls = type(self)
        overridden = {name for name in (*STAGES, *_GENERIC_STAGES)
                      if getattr(cls, name, None) is not getattr(Hook, name)}
        for generic, stages in _GENERIC_STAGES.items():
            if generic in overridden:
                overridden.update(stages)
        return [stage for stage in STAGES if stage in overridden]

    # --- MMEngine's helpers -----------------------------------------------------------------------
    def every_n_epochs(self, runner: RunContext, n: int, start: int = 0) -> bool:
        """True when ``epoch + 1 - start`` is a positive multiple of ``n`` (or zero)."""
        dividend = runner.epoch + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        """True on every ``n``-th batch of an epoch."""
        return (batch_idx + 1) % n == 0 if n > 0 else False

    def every_n_train_iters(self, runner: RunContext, n: int, start: int = 0) -> bool:
        """True when ``iter + 1 - start`` is a positive multiple of ``n`` (or zero)."""
        dividend = runner.iter + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def end_of_epoch(self, dataloader: Any, batch_idx: int) -> bool:
        """True at the last batch of ``dataloader``."""
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner: RunContext) -> bool:
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner: RunContext) -> bool:
        return runner.iter + 1 == runner.max_iters

    def __repr__(self) -> str:
        return f"{type(self).__name__}(priority={self.priority!r})"

    @staticmethod
    def every_n(count: int, n: int) -> bool:
        """True on every ``n``-th count (1-based), never for ``n <= 0``."""
        return n > 0 and count % n == 0
