"""Train, validation and test loops.

Each loop reads top to bottom: hook, step, hook. The train loops keep the run's
position (epochs and iterations completed, batch inside the epoch) so a
checkpoint records exactly where to continue, and call ``runner.safe_point()``
between iterations: the only place the run is steered from (stop, commands).

``workflow=[('train', 2), ('val', 1)]`` follows MMCV's ``EpochBasedRunner`` and
``IterBasedRunner``: the phases repeat in order until training has run
``max_epochs`` (or ``max_iters``); a ``val`` phase runs even after the last
train phase if it comes next in the list, and validation phases do not count
towards the maximum.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from cockpit.dist import is_distributed
from cockpit.errors import ConfigError

if TYPE_CHECKING:
    from cockpit.evaluator import Evaluator
    from cockpit.interface import RunContext


def _check_workflow(workflow: Sequence, unit: str, has_val: bool) -> list[tuple[str, int]]:
    checked = []
    for item in workflow:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and item[0] in ("train", "val")
                and isinstance(item[1], int) and item[1] > 0):
            raise ConfigError(f"workflow entry {item!r} is not ('train' or 'val', a positive count)",
                              key="train_cfg.workflow", fix=f"write e.g. workflow=[('train', 2), ('val', 1)] ({unit}s)")
        checked.append((item[0], item[1]))
    if not any(mode == "train" for mode, _ in checked):
        raise ConfigError("workflow has no 'train' phase, so it would never end", key="train_cfg.workflow",
                          fix="add ('train', N), or call runner.val() to only validate")
    if any(mode == "val" for mode, _ in checked) and not has_val:
        raise ConfigError("workflow has a 'val' phase but the run has no validation",
                          key="train_cfg.workflow", fix="set val_dataloader, val_evaluator and val_cfg, or drop ('val', N)")
    return checked


def _seed_loader(dataloader: Any, seed: int) -> None:
    # A DataLoader draws a base seed for its workers from its generator each time an
    # iterator is made. Giving it a generator reseeded per epoch keeps the global RNG
    # untouched, so a resumed run draws the same random numbers as an uninterrupted one.
    generator = getattr(dataloader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)


class BaseTrainLoop:
    """What both train loops share: position, validation schedule, stopping."""

    def __init__(self, runner: RunContext, dataloader: DataLoader, val_begin: int, val_interval: int,
                 dynamic_intervals: Sequence | None = None) -> None:
        self.runner = runner
        self.dataloader = dataloader
        self.val_begin = val_begin
        self.val_interval = val_interval
        # MMEngine's dynamic_intervals=[(milestone, interval), ...]: from each milestone on, validate
        # every `interval` epochs (or iterations) instead.
        pairs = [tuple(p) for p in dynamic_intervals or ()]
        if any(len(p) != 2 or not all(isinstance(v, int) and v > 0 for v in p) for p in pairs) or \
                [m for m, _ in pairs] != sorted({m for m, _ in pairs}):
            raise ConfigError(f"dynamic_intervals must be (milestone, interval) pairs of positive ints with "
                              f"increasing milestones, got {dynamic_intervals!r}", key="train_cfg.dynamic_intervals",
                              fix="write dynamic_intervals=[(10, 2), (20, 1)]")
        self._milestones = [0, *(m for m, _ in pairs)]
        self._intervals = [val_interval, *(i for _, i in pairs)]
        self.stop_training = False
        self._epoch = 0
        self._iter = 0
        # Position for checkpoints: what is complete, and where the current epoch stands.
        self.done_epochs = 0
        self.done_iters = 0
        self.batch_in_epoch = 0
        self._jumped = False

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    def position(self) -> dict[str, int]:
        """Where a checkpoint taken now resumes: epochs and iterations done, batch within the epoch."""
        return {"epoch": self.done_epochs, "iter": self.done_iters, "batch_in_epoch": self.batch_in_epoch}

    def restore_position(self, epoch: int, iteration: int, batch_in_epoch: int) -> None:
        """Continue from a checkpoint's position (set by ``Runner.resume``)."""
        self._epoch = self.done_epochs = epoch
        self._iter = self.done_iters = iteration
        self.batch_in_epoch = batch_in_epoch

    def jump(self) -> None:
        """The position was restored mid-run (a live resume): restart the data from it."""
        self._jumped = True

    def run_iter(self, batch_idx: int, data_batch: Any) -> None:
        """One training step, between its two hook stages."""
        runner = self.runner
        runner.call_hook("before_train_iter", batch_idx=batch_idx, data_batch=data_batch)
        outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
        self.done_iters = self._iter + 1
        self.batch_in_epoch = batch_idx + 1
        runner.call_hook("after_train_iter", batch_idx=batch_idx, data_batch=data_batch, outputs=outputs)
        self._iter += 1
        runner.safe_point()

    def _interval_at(self, count: int) -> int:
        """The validation interval in force after ``count`` epochs (iterations), as MMEngine decides it."""
        self.val_interval = self._intervals[bisect.bisect(self._milestones, count) - 1]
        return self.val_interval

    def _validate(self) -> None:
        if self.runner.val_loop is not None:
            self.runner.val_loop.run()

    def _start_batches(self, epoch: int, skip: int) -> int:
        """Point the sampler at ``epoch``, skipping its first ``skip`` batches; returns ``skip``."""
        sampler = getattr(self.dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if skip and hasattr(sampler, "set_start"):
            sampler.set_start(skip * (self.dataloader.batch_size or 1))
        elif skip:
            raise RuntimeError(
                f"cannot resume mid-epoch: the train sampler {type(sampler).__name__} has no set_start(); "
                "use DefaultSampler or InfiniteSampler, or resume from an epoch-end checkpoint"
            )
        _seed_loader(self.dataloader, self.runner.seed + epoch)
        return skip


class EpochBasedTrainLoop(BaseTrainLoop):
    """Train for ``max_epochs`` epochs, validating every ``val_interval`` from ``val_begin``.

    Args:
        runner: the runner.
        dataloader: the built train dataloader.
        max_epochs: how many epochs to train.
        val_begin: the first epoch after which validation may run.
        val_interval: validate after every this many epochs (and after the last).
        workflow: MMCV's phases in epochs, e.g. ``[('train', 2), ('val', 1)]``;
            replaces ``val_begin``/``val_interval`` when given.
    """

    def __init__(self, runner: RunContext, dataloader: DataLoader, max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1, workflow: Sequence | None = None,
                 dynamic_intervals: Sequence | None = None) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval, dynamic_intervals)
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ConfigError(f"max_epochs must be a positive int, got {max_epochs!r}", key="train_cfg.max_epochs",
                              fix="set train_cfg=dict(by_epoch=True, max_epochs=10)")
        try:
            self.epoch_length = len(dataloader)
        except TypeError:
            raise ConfigError("epoch-based training needs a dataloader with a length", key="train_dataloader",
                              fix="use DefaultSampler, or iteration-based training (by_epoch=False, max_iters=N)") from None
        self._max_epochs = max_epochs
        self.workflow = _check_workflow(workflow, "epoch", runner.val_loop is not None) if workflow else None

    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_epochs * self.epoch_length

    def run(self) -> torch.nn.Module:
        """Train to ``max_epochs`` (or until stopped) and return the model."""
        runner = self.runner
        runner.call_hook("before_train")
        if self.workflow:
            self._run_workflow()
        else:
            while self._epoch < self._max_epochs and not self.stop_training:
                if self.run_epoch() and not self.stop_training and self._should_validate():
                    self._validate()
                runner.safe_point()  # between epochs
        runner.call_hook("after_train")
        return runner.model

    def _run_workflow(self) -> None:
        while self._epoch < self._max_epochs and not self.stop_training:
            for mode, count in self.workflow:
                for _ in range(count):
                    if self.stop_training or (mode == "train" and self._epoch >= self._max_epochs):
                        break
                    if mode == "train":
                        self.run_epoch()
                    else:
                        self._validate()
                    self.runner.safe_point()

    def run_epoch(self) -> bool:
        """One pass over the data (or the rest of it, after a resume); False if it ended early."""
        runner = self.runner
        self._jumped = False
        start = self._start_batches(self._epoch, self.batch_in_epoch)
        runner.call_hook("before_train_epoch")
        runner.model.train()
        for batch_idx, data_batch in enumerate(self.dataloader, start):
            self.run_iter(batch_idx, data_batch)
            if self.stop_training or self._jumped:
                # Stopped mid-epoch (the position stays inside it for a resume), or a live
                # resume moved the run elsewhere: this epoch does not end here.
                return False
        self.done_epochs = self._epoch + 1
        self.batch_in_epoch = 0
        runner.call_hook("after_train_epoch")
        self._epoch += 1
        return True

    def _should_validate(self) -> bool:
        return (self.runner.val_loop is not None and self._epoch >= self.val_begin
                and (self._epoch % self._interval_at(self._epoch) == 0 or self._epoch == self._max_epochs))


class _InfiniteLoader:
    """Iterates a dataloader forever, moving its sampler to the next epoch at each pass."""

    def __init__(self, loop: IterBasedTrainLoop) -> None:
        self.loop = loop
        self.dataloader = loop.dataloader
        self.epoch, skip = loop.start_epoch_and_skip()
        loop._start_batches(self.epoch, skip)
        self._iterator = iter(self.dataloader)

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            self.epoch += 1
            self.loop._start_batches(self.epoch, 0)
            self._iterator = iter(self.dataloader)
            return next(self._iterator)


class IterBasedTrainLoop(BaseTrainLoop):
    """Train for ``max_iters`` iterations, validating every ``val_interval`` from ``val_begin``.

    Args:
        runner: the runner.
        dataloader: the built train dataloader (``InfiniteSampler`` or ``DefaultSampler``).
        max_iters: how many iterations to train.
        val_begin: the first iteration after which validation may run.
        val_interval: validate after every this many iterations (and after the last).
        workflow: MMCV's phases in iterations, e.g. ``[('train', 100), ('val', 10)]``:
            a val phase runs that many validation batches and reports metrics on them.
    """

    def __init__(self, runner: RunContext, dataloader: DataLoader, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, workflow: Sequence | None = None,
                 dynamic_intervals: Sequence | None = None) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval, dynamic_intervals)
        if not isinstance(max_iters, int) or max_iters < 1:
            raise ConfigError(f"max_iters must be a positive int, got {max_iters!r}", key="train_cfg.max_iters",
                              fix="set train_cfg=dict(by_epoch=False, max_iters=10000)")
        self._max_iters = max_iters
        self.workflow = _check_workflow(workflow, "iteration", runner.val_loop is not None) if workflow else None
        self._batches: _InfiniteLoader | None = None

    @property
    def max_epochs(self) -> int:
        return 1

    @property
    def max_iters(self) -> int:
        return self._max_iters

    def start_epoch_and_skip(self) -> tuple[int, int]:
        """The sampler epoch and batches to skip for the current iteration."""
        sampler = getattr(self.dataloader, "sampler", None)
        from cockpit.data import InfiniteSampler

        if isinstance(sampler, InfiniteSampler):
            return 0, self._iter
        try:
            length = len(self.dataloader)
        except TypeError:
            return 0, self._iter
        return divmod(self._iter, length)

    def run(self) -> torch.nn.Module:
        """Train to ``max_iters`` (or until stopped) and return the model."""
        runner = self.runner
        runner.call_hook("before_train")
        # An iteration-based run is one long epoch, as in MMEngine.
        runner.call_hook("before_train_epoch")
        self._batches = _InfiniteLoader(self)
        if self.workflow:
            self._run_workflow()
        else:
            while self._iter < self._max_iters and not self.stop_training:
                self.step()
                if not self.stop_training and self._should_validate():
                    self._validate()
        if not self.stop_training:
            runner.call_hook("after_train_epoch")
        runner.call_hook("after_train")
        return runner.model

    def step(self) -> None:
        """Fetch one batch and train on it."""
        if self._jumped:  # a live resume moved the run: continue the data from the new position
            self._jumped = False
            self._batches = _InfiniteLoader(self)
        self.runner.model.train()
        data_batch = next(self._batches)
        self.run_iter(self._iter, data_batch)

    def _run_workflow(self) -> None:
        val_batches = None
        while self._iter < self._max_iters and not self.stop_training:
            for mode, count in self.workflow:
                if mode == "train":
                    for _ in range(count):
                        if self.stop_training or self._iter >= self._max_iters:
                            break
                        self.step()
                elif not self.stop_training:
                    if val_batches is None:
                        val_batches = self.runner.val_loop.cycle()
                    self.runner.val_loop.run(batches=val_batches, num_batches=count)

    def _should_validate(self) -> bool:
        return (self.runner.val_loop is not None and self._iter >= self.val_begin
                and (self._iter % self._interval_at(self._iter) == 0 or self._iter == self._max_iters))


def _sized(dataloader: Any) -> bool:
    try:
        len(dataloader.dataset)
    except (TypeError, AttributeError):
        return False
    return True


class _EvalLoop:
    """A pass over a dataloader in eval mode, feeding the evaluator."""

    stage = "val"

    def __init__(self, runner: RunContext, dataloader: DataLoader, evaluator: Evaluator, fp16: bool = False) -> None:
        self.runner = runner
        self.dataloader = dataloader
        self.evaluator = evaluator
        self.fp16 = fp16
        metainfo = getattr(getattr(dataloader, "dataset", None), "metainfo", None)
        if metainfo is not None:  # as MMEngine's loops do: OpenMMLab metrics read it
            evaluator.dataset_meta = metainfo

    def cycle(self) -> Iterator[Any]:
        """Batches forever (for iteration-based workflows' val phases)."""
        while True:
            yield from self.dataloader

    def run(self, batches: Iterator[Any] | None = None, num_batches: int | None = None) -> dict[str, Any]:
        """Evaluate over the whole dataloader, or ``num_batches`` of ``batches``; return the metrics."""
        runner, stage = self.runner, self.stage
        was_training = runner.model.training
        runner.call_hook(f"before_{stage}")
        runner.call_hook(f"before_{stage}_epoch")
        runner.model.eval()
        source = self.dataloader if batches is None else batches
        if num_batches is not None:
            # Exactly num_batches, so a cycling source is not advanced past what is used.
            source = itertools.islice(source, num_batches)
        # A stop (SIGTERM on a cluster, say) must not wait for a long validation: it is abandoned
        # at the next batch and the train loop's safe point saves and stops. (Not in a distributed
        # run: the ranks gather results together, so they stop at the same safe point instead.)
        steering = None if is_distributed() else runner.steering
        for batch_idx, data_batch in enumerate(source):
            if steering is not None and steering.stop_requested is not None:
                runner.logger.warning(f"{stage} abandoned at batch {batch_idx}: {steering.stop_requested}")
                for metric in self.evaluator.metrics:
                    metric.results.clear()
                runner.call_hook(f"after_{stage}")
                runner.model.train(was_training)
                return {}
            self.run_iter(batch_idx, data_batch)
        # The dataset's size drops the padding a distributed sampler adds (MMEngine passes it too).
        size = len(self.dataloader.dataset) if num_batches is None and _sized(self.dataloader) else None
        metrics = self.evaluator.evaluate(size)
        runner.call_hook(f"after_{stage}_epoch", metrics=metrics)
        runner.call_hook(f"after_{stage}")
        runner.model.train(was_training)
        return metrics

    def run_iter(self, batch_idx: int, data_batch: Any) -> None:
        runner, stage = self.runner, self.stage
        runner.call_hook(f"before_{stage}_iter", batch_idx=batch_idx, data_batch=data_batch)
        step = runner.model.val_step if stage == "val" else runner.model.test_step
        if self.fp16:  # MMEngine's val_cfg/test_cfg fp16=True: autocast (bfloat16 on CPU, float16 on GPU)
            device = next(runner.model.parameters()).device.type
            with torch.autocast(device_type=device, dtype=torch.bfloat16 if device == "cpu" else torch.float16):
                outputs = step(data_batch)
        else:
            outputs = step(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        runner.call_hook(f"after_{stage}_iter", batch_idx=batch_idx, data_batch=data_batch, outputs=outputs)


class ValLoop(_EvalLoop):
    """Validation over the val dataloader with the val evaluator."""

    stage = "val"


class TestLoop(_EvalLoop):
    """Testing over the test dataloader with the test evaluator."""

    stage = "test"
