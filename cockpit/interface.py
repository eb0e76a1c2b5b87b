"""What the parts of a run see of it: small typed interfaces, defined below everything that uses them.

Hooks, loops, commands, the checkpointer and the channel are handed the run, but
they must not depend on ``Runner`` (that would tie every layer to the top one and
make the imports run in circles). They see it through these ``Protocol``s
instead: ``Runner`` satisfies them, and so does any test double that has the
same attributes.

- ``RunContext``: what a hook, a loop or a command may read and call.
- ``Steer``: the steering flags a command may set (pause, stop, save).
- ``Checkpoints``: what a hook or a command may ask of the checkpointer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from cockpit.config import Config
    from cockpit.hub import MessageHub
    from cockpit.optim import OptimWrapper
    from cockpit.schedulers import ParamScheduler


class Steer(Protocol):
    """The steering of a run: flags read at the next safe point."""

    paused: bool
    stop_requested: str | None

    def request_stop(self, reason: str = "requested", save: bool = True) -> None:
        """Stop after the current iteration, saving a checkpoint first unless ``save=False``."""

    def request_save(self, reason: str = "requested") -> None:
        """Save a checkpoint at the next safe point."""

    def set_paused(self, paused: bool) -> None:
        """Hold the training thread at the next safe point, or let it go on."""


class Checkpoints(Protocol):
    """The checkpointer, as hooks and commands use it."""

    out_dir: Path | None
    last_ckpt: str | None

    def save_now(self, reason: str = "requested") -> Path:
        """Save a resumable checkpoint of the current position (``iter_<N>.pth``)."""

    def save_periodic(self, step: int) -> Path:
        """Save the periodic checkpoint of ``step`` and rotate old ones."""

    def save_best(self, key: str, score: float, filename: str) -> Path:
        """Save ``filename`` as the best for ``key``; the previous best goes once it is complete."""

    def resolve(self, which: str) -> Path:
        """The checkpoint a user means by ``which``: a path, a bare name, ``latest`` or ``best``."""


class RunContext(Protocol):
    """A run as hooks, loops and commands see it (``Runner`` implements it)."""

    cfg: Config
    model: torch.nn.Module
    optim_wrapper: OptimWrapper | None
    param_schedulers: list[ParamScheduler]
    message_hub: MessageHub
    logger: logging.Logger
    checkpointer: Checkpoints
    steering: Steer
    trust_checkpoints: bool
    resumed_from: str | None

    @property
    def work_dir(self) -> Path: ...
    @property
    def log_dir(self) -> Path: ...
    @property
    def timestamp(self) -> str: ...
    @property
    def experiment_name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def world_size(self) -> int: ...
    @property
    def is_main_process(self) -> bool: ...
    @property
    def epoch(self) -> int: ...
    @property
    def iter(self) -> int: ...
    @property
    def max_epochs(self) -> int: ...
    @property
    def max_iters(self) -> int: ...
    @property
    def in_training(self) -> bool: ...
    @property
    def is_epoch_based(self) -> bool: ...
    @property
    def train_loop(self) -> Any: ...
    @property
    def val_loop(self) -> Any: ...
    @property
    def test_loop(self) -> Any: ...
    @property
    def train_dataloader(self) -> Any: ...
    @property
    def train_batch_size(self) -> int | None: ...
    @property
    def stopping(self) -> bool: ...

    def position(self) -> dict[str, int]:
        """Where a checkpoint taken now resumes: ``epoch``, ``iter`` and ``batch_in_epoch`` done."""

    def stop(self) -> None:
        """End the train loop after the current iteration."""

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call every hook that has the stage ``fn_name``, in priority order."""

    def safe_point(self) -> None:
        """Between iterations and epochs: apply commands, serve save and stop requests."""

    def resume(self, filename: str | Path, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               checkpoint: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """Restore a full training state from a checkpoint."""


__all__ = ["Checkpoints", "RunContext", "Steer"]
