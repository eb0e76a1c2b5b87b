"""The ``Hook`` base class: MMEngine's stages, with typed no-op methods.

A hook overrides the stages it cares about; the dispatcher works out once which
hooks override which stage, so a stage no hook overrides costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.control import Command
    from cockpit.runner import Runner

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


class Hook:
    """Base class of all hooks.

    Subclasses override any of the stage methods below and may set ``priority``
    (a ``Priority``, its name, or an int 0-100; lower runs first). A hook with
    state worth keeping across a resume returns it from ``state_dict()``.
    """

    priority: ClassVar[int | str | Priority] | int | str | Priority = Priority.NORMAL
    stages: ClassVar[tuple[str, ...]] = STAGES

    def before_run(self, runner: Runner) -> None:
        """Once, before any loop runs."""

    def after_run(self, runner: Runner) -> None:
        """Once, after all loops ran (also after a failure)."""

    def before_train(self, runner: Runner) -> None:
        """Before the train loop starts."""

    def after_train(self, runner: Runner) -> None:
        """After the train loop ends."""

    def before_val(self, runner: Runner) -> None:
        """Before a validation loop starts."""

    def after_val(self, runner: Runner) -> None:
        """After a validation loop ends."""

    def before_test(self, runner: Runner) -> None:
        """Before the test loop starts."""

    def after_test(self, runner: Runner) -> None:
        """After the test loop ends."""

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Before a checkpoint is written; may add entries to ``checkpoint``."""

    def after_load_checkpoint(self, runner: Runner, checkpoint: Mapping[str, Any]) -> None:
        """After a checkpoint was loaded for a resume or ``load_from``."""

    def before_train_epoch(self, runner: Runner) -> None:
        """Before each training epoch (once for iteration-based training)."""

    def before_val_epoch(self, runner: Runner) -> None:
        """Before each validation epoch."""

    def before_test_epoch(self, runner: Runner) -> None:
        """Before each test epoch."""

    def after_train_epoch(self, runner: Runner) -> None:
        """After each training epoch (once for iteration-based training)."""

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        """After each validation epoch, with the computed metrics."""

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        """After each test epoch, with the computed metrics."""

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each training iteration."""

    def before_val_iter(self, runner: Runner, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each validation iteration."""

    def before_test_iter(self, runner: Runner, batch_idx: int, data_batch: DataBatch = None) -> None:
        """Before each test iteration."""

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: DataBatch = None, outputs: dict | None = None
    ) -> None:
        """After each training iteration, with the logged values of the step."""

    def after_val_iter(
        self, runner: Runner, batch_idx: int, data_batch: DataBatch = None, outputs: Sequence | None = None
    ) -> None:
        """After each validation iteration, with the model's predictions."""

    def after_test_iter(
        self, runner: Runner, batch_idx: int, data_batch: DataBatch = None, outputs: Sequence | None = None
    ) -> None:
        """After each test iteration, with the model's predictions."""

    def commands(self) -> list[Command]:
        """Commands this hook offers to views and ``cockpit ctl`` (applied at safe points)."""
        return []

    def state_dict(self) -> dict[str, Any] | None:
        """State to keep in checkpoints, or None for a stateless hook."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def get_triggered_stages(self) -> list[str]:
        """The stages this hook overrides, in stage order."""
        cls = type(self)
        return [
            stage
            for stage in STAGES
            if getattr(cls, stage, None) is not getattr(Hook, stage)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(priority={self.priority!r})"

    @staticmethod
    def every_n(count: int, n: int) -> bool:
        """True on every ``n``-th count (1-based), never for ``n <= 0``."""
        return n > 0 and count % n == 0
