"""``CheckpointHook``: MMEngine's options and semantics, with saves that never lose a good checkpoint.

Differences from MMEngine, all on the side of safety:

- rotation deletes old files only after the new checkpoint is complete on disk
  and ``last_checkpoint`` names it; it never deletes the current best, the
  checkpoint this run resumed from, or a file this run did not write;
- the previous best file is removed only after the new best is complete;
- a NaN or infinite metric never becomes the best.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Sequence
from math import inf
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cockpit.checkpoint import (
    atomic_write,
    clean_temporaries,
    fault_point,
    load_checkpoint,
    write_pointer,
)
from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.runner import Runner


def _as_list(value: str | Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        if len(set(value)) != len(value):
            raise ValueError(f"{name} has duplicate entries: {list(value)}")
        return list(value)
    raise TypeError(f"{name} must be a str or a list of str, got {value!r}")


class CheckpointHook(Hook):
    """Save checkpoints periodically, keep the best, rotate old ones.

    Args:
        interval: save every this many epochs (``by_epoch``) or iterations; -1 never.
        by_epoch: count ``interval`` in epochs or iterations.
        save_optimizer: include the optimizer state (needed to resume).
        save_param_scheduler: include the schedulers' state (needed to resume).
        out_dir: save under ``out_dir/<last folder of work_dir>`` instead of ``work_dir``.
        max_keep_ckpts: keep at most this many periodic checkpoints; -1 keeps all.
        save_last: also save at the last epoch/iteration, whatever the interval.
        save_best: a metric key, a list of keys, or ``'auto'`` (the first metric): keep a
            ``best_<key>_<epoch|iter>_N.pth`` for the best value seen.
        rule: ``'greater'`` or ``'less'`` (or one per key); inferred from the key when None.
        greater_keys: keys (or substrings) that mean greater is better.
        less_keys: keys (or substrings) that mean less is better.
        filename_tmpl: file name with one ``{}`` for the epoch/iteration number.
        published_keys: after training, also write slim copies of the last and best
            checkpoints with only these keys, named with their sha256 prefix.
        save_begin: the first epoch/iteration at which periodic saving starts.
    """

    priority = Priority.VERY_LOW
    rule_map = {"greater": lambda x, y: x > y, "less": lambda x, y: x < y}
    init_value_map = {"greater": -inf, "less": inf}
    _default_greater_keys = ["acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc"]
    _default_less_keys = ["loss"]

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, out_dir: str | os.PathLike | None = None,
                 max_keep_ckpts: int = -1, save_last: bool = True, save_best: str | list[str] | None = None,
                 rule: str | list[str] | None = None, greater_keys: Sequence[str] | str | None = None,
                 less_keys: Sequence[str] | str | None = None, filename_tmpl: str | None = None,
                 published_keys: str | list[str] | None = None, save_begin: int = 0) -> None:
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self.out_dir: str | os.PathLike | None = out_dir
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        if filename_tmpl is None:
            filename_tmpl = "epoch_{}.pth" if by_epoch else "iter_{}.pth"
        if filename_tmpl.count("{}") != 1:
            raise ValueError(f"filename_tmpl must contain exactly one '{{}}', got {filename_tmpl!r}")
        self.filename_tmpl = filename_tmpl
        if save_begin < 0:
            raise ValueError(f"save_begin should not be less than 0, but got {save_begin}")
        self.save_begin = save_begin

        self.save_best = _as_list(save_best, "save_best")
        if self.save_best and "auto" in self.save_best and len(self.save_best) != 1:
            raise ValueError("save_best='auto' cannot be combined with other keys")
        rules = _as_list(rule, "rule") if rule is not None else [None]
        if self.save_best and len(rules) not in (1, len(self.save_best)):
            raise ValueError(f'Number of "rule" must be 1 or the same as number of "save_best", but got {len(rules)}')
        self.greater_keys = list(_as_list(greater_keys, "greater_keys") or self._default_greater_keys)
        self.less_keys = list(_as_list(less_keys, "less_keys") or self._default_less_keys)
        self.is_better_than: dict[str, Any] = {}
        self.rules: list[str | None] = []
        self.key_indicators: list[str] = []
        if self.save_best:
            self._init_rule(rules, self.save_best)
        self.best_ckpt_paths: dict[str, str | None] = {}

        self.published_keys = _as_list(published_keys, "published_keys")
        self.last_ckpt: str | None = None
        self.keep_ckpt_ids: list[int] = []

    # --- rules ----------------------------------------------------------------
    def _init_rule(self, rules: list[str | None], key_indicators: list[str]) -> None:
        if len(rules) == 1:
            rules = rules * len(key_indicators)
        self.rules = []
        for rule, key in zip(rules, key_indicators, strict=True):
            if rule is not None and rule not in self.rule_map:
                raise ValueError(f"rule must be 'greater', 'less' or None, but got {rule!r}")
            if rule is None and key != "auto":
                lower = key.lower()
                greater = {k.lower() for k in self.greater_keys}
                less = {k.lower() for k in self.less_keys}
                if lower in greater:
                    rule = "greater"
                elif lower in less:
                    rule = "less"
                elif any(k in lower for k in greater):
                    rule = "greater"
                elif any(k in lower for k in less):
                    rule = "less"
                else:
                    raise ValueError(
                        f"Cannot infer the rule for key {key!r}, thus a specific rule must be specified: "
                        f"set rule='greater' or rule='less' in the CheckpointHook config"
                    )
            if rule is not None:
                self.is_better_than[key] = self.rule_map[rule]
            self.rules.append(rule)
        self.key_indicators = list(key_indicators)

    def _hub_keys(self, key: str) -> tuple[str, str]:
        if len(self.key_indicators) == 1:
            return "best_score", "best_ckpt"
        return f"best_score_{key}", f"best_ckpt_{key}"

    # --- stages ---------------------------------------------------------------
    def before_train(self, runner: Runner) -> None:
        work_dir = Path(runner.work_dir)
        if self.out_dir is None:
            self.out_dir = work_dir
        elif Path(self.out_dir) != work_dir:
            self.out_dir = Path(self.out_dir) / work_dir.name
        self.out_dir = Path(self.out_dir)
        runner.logger.info(f"Checkpoints will be saved to {self.out_dir}.")
        if runner.is_main_process:
            for leftover in clean_temporaries(self.out_dir):
                runner.logger.warning(f"removed {leftover.name}, left by an interrupted save")
        hub = runner.message_hub
        self.last_ckpt = hub.get_info("last_ckpt")
        if self.save_best and "auto" not in self.key_indicators:
            for key in self.key_indicators:
                self.best_ckpt_paths[key] = hub.get_info(self._hub_keys(key)[1])
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = list(hub.get_info("keep_ckpt_ids") or [])
            self._rotate(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        if not self.by_epoch:
            return
        if self._every_n(runner.epoch + 1) or (self.save_last and runner.epoch + 1 == runner.max_epochs):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            self._save_checkpoint(runner)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        if self.by_epoch:
            return
        if self._every_n(runner.iter + 1) or (self.save_last and runner.iter + 1 == runner.max_iters):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            self._save_checkpoint(runner)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if not metrics:
            runner.logger.warning("Since `metrics` is an empty dict, the best checkpoint is not updated "
                                  "in this evaluation.")
            return
        # Best checkpoints belong to training; runner.val() alone saves nothing.
        if self.save_best and runner.in_training and self.out_dir is not None:
            self._save_best_checkpoint(runner, metrics)

    def after_train(self, runner: Runner) -> None:
        if self.published_keys is None or not runner.is_main_process:
            return
        if self.save_last and self.last_ckpt is not None:
            self._publish(runner, self.last_ckpt)
        for path in self.best_ckpt_paths.values():
            if path is not None:
                self._publish(runner, path)

    def _every_n(self, count: int) -> bool:
        dividend = count - self.save_begin
        return self.interval > 0 and dividend >= 0 and dividend % self.interval == 0

    # --- saving ---------------------------------------------------------------
    def _save_checkpoint(self, runner: Runner) -> None:
        step = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        self._save_checkpoint_with_step(runner, step)

    def _save_checkpoint_with_step(self, runner: Runner, step: int) -> None:
        hub = runner.message_hub
        filename = self.filename_tmpl.format(step)
        path = str(Path(self.out_dir) / filename)
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step):
            self.keep_ckpt_ids.append(step)
        # The hub goes into the checkpoint: record it as the latest before writing, so a
        # run resumed from this file knows which files it made and which one it is.
        hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        hub.update_info("last_ckpt", path)
        runner.save_checkpoint(self.out_dir, filename, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler)
        self.last_ckpt = path
        if runner.is_main_process:
            write_pointer(runner.work_dir, path)
            fault_point("before_rotation")
            self._rotate(runner)

    def save_now(self, runner: Runner) -> Path:
        """Save the current position at once (a signal, a command): ``iter_<N>.pth``.

        Not rotated, unless an iteration-based hook's periodic save writes the same name.
        """
        position = runner.train_loop.position()
        name = f"iter_{position['iter']}.pth"
        if self.out_dir is None:
            self.before_train(runner)
        path = Path(self.out_dir) / name
        runner.message_hub.update_info("last_ckpt", str(path))
        runner.save_checkpoint(self.out_dir, name, save_optimizer=True, save_param_scheduler=True)
        self.last_ckpt = str(path)
        if runner.is_main_process:
            write_pointer(runner.work_dir, path)
        return path

    def _protected(self, runner: Runner) -> set[str]:
        keep = {p for p in self.best_ckpt_paths.values() if p}
        if self.last_ckpt:
            keep.add(str(self.last_ckpt))
        if runner.resumed_from:
            keep.add(str(runner.resumed_from))
        return {str(Path(p).resolve()) for p in keep}

    def _rotate(self, runner: Runner) -> None:
        """Delete the oldest periodic checkpoints beyond ``max_keep_ckpts`` (never a protected one)."""
        if self.max_keep_ckpts <= 0:
            return
        protected = self._protected(runner)
        while len(self.keep_ckpt_ids) > self.max_keep_ckpts:
            step = self.keep_ckpt_ids.pop(0)
            path = Path(self.out_dir) / self.filename_tmpl.format(step)
            if runner.is_main_process and str(path.resolve()) not in protected and path.is_file():
                path.unlink()
                runner.logger.info(f"Removed old checkpoint {path.name} (max_keep_ckpts={self.max_keep_ckpts})")
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

    def _save_best_checkpoint(self, runner: Runner, metrics: dict[str, Any]) -> None:
        hub = runner.message_hub
        mid_epoch = self.by_epoch and runner.train_loop.position()["batch_in_epoch"] != 0
        if mid_epoch:
            # Validation asked for inside an epoch: name the files by iteration, so an
            # epoch's checkpoint is never overwritten by a mid-epoch state.
            ckpt_filename = f"iter_{runner.iter}.pth"
            unit, count = "iter", runner.iter
        elif self.by_epoch:
            ckpt_filename = self.filename_tmpl.format(runner.epoch)
            unit, count = "epoch", runner.epoch
        else:
            ckpt_filename = self.filename_tmpl.format(runner.iter)
            unit, count = "iter", runner.iter
        if "auto" in self.key_indicators:
            self._init_rule(self.rules, [next(iter(metrics))])
            self.best_ckpt_paths = {self.key_indicators[0]: hub.get_info("best_ckpt")}
        updated = False
        for key, rule in zip(self.key_indicators, self.rules, strict=True):
            if key not in metrics:
                raise KeyError(f"save_best key {key!r} is not among the metrics {sorted(metrics)}; "
                               "set save_best to one of them")
            score = metrics[key]
            if score is None or not math.isfinite(float(score)):
                runner.logger.warning(f"{key} is {score}: not considered for the best checkpoint")
                continue
            score_key, ckpt_key = self._hub_keys(key)
            best = hub.get_info(score_key, self.init_value_map[rule])
            if not self.is_better_than[key](score, best):
                continue
            updated = True
            previous = self.best_ckpt_paths.get(key)
            name = f"best_{key}_{ckpt_filename}".replace("/", "_")
            path = str(Path(self.out_dir) / name)
            hub.update_info(score_key, float(score))
            hub.update_info(ckpt_key, path)
            self.best_ckpt_paths[key] = path
            runner.save_checkpoint(self.out_dir, name, save_optimizer=False, save_param_scheduler=False)
            # Only now that the new best is complete does the old one go.
            if previous and previous != path and runner.is_main_process and Path(previous).is_file():
                Path(previous).unlink()
                runner.logger.info(f"The previous best checkpoint {previous} is removed")
            runner.logger.info(f"The best checkpoint with {float(score):0.4f} {key} at {count} {unit} "
                               f"is saved to {name}.")
        # The periodic checkpoint written before this validation holds the old best in its hub
        # state; save it again so a resume knows the new best (and will not delete it).
        if updated and self.last_ckpt is not None:
            if mid_epoch:
                self.save_now(runner)
            else:
                self._save_checkpoint_with_step(runner, count)

    def _publish(self, runner: Runner, ckpt_path: str) -> None:
        checkpoint = load_checkpoint(ckpt_path)
        removed = [k for k in checkpoint if k not in self.published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            runner.logger.info(f"Key {removed} will be removed because they are not found in published_keys. "
                               f"If you want to keep them, please set `{removed}` in published_keys")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        final = f"{os.path.splitext(ckpt_path)[0]}-{sha[:8]}.pth"
        atomic_write(final, lambda file: file.write(data))
        runner.logger.info(f"The checkpoint ({ckpt_path}) is published to {final}.")
