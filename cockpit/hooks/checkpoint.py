"""``CheckpointHook``: MMEngine's options and semantics; it decides when to save, the checkpointer saves.

The run's ``Checkpointer`` writes the files, moves the ``last_checkpoint``
pointer, rotates and keeps the records. Differences from MMEngine, all on the
side of safety:

- rotation deletes old files only after the new checkpoint is complete on disk
  and ``last_checkpoint`` names it; it never deletes the current best, the
  checkpoint this run resumed from, or a file this run did not write;
- the previous best file is removed only after the new best is complete;
- a NaN or infinite metric never becomes the best.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from math import inf
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit.hooks.base import DataBatch, Hook
from cockpit.priority import Priority

if TYPE_CHECKING:
    from cockpit.interface import RunContext


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
    reads_every_iteration = False
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
        self.out_dir_cfg = out_dir  # as configured; ``out_dir`` is where files really go
        self.out_dir: Path | None = None
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

        self.published_keys = _as_list(published_keys, "published_keys")

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
    def before_train(self, runner: RunContext) -> None:
        self.out_dir = runner.checkpointer.configure(self.out_dir_cfg, self.filename_tmpl, self.max_keep_ckpts,
                                                     self.save_optimizer, self.save_param_scheduler)
        runner.logger.info(f"Checkpoints will be saved to {self.out_dir}.")

    def after_train_epoch(self, runner: RunContext) -> None:
        if not self.by_epoch:
            return
        if self._every_n(runner.epoch + 1) or (self.save_last and runner.epoch + 1 == runner.max_epochs):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            runner.checkpointer.save_periodic(runner.epoch + 1)

    def after_train_iter(self, runner: RunContext, batch_idx: int, data_batch: DataBatch = None,
                         outputs: dict | None = None) -> None:
        if self.by_epoch:
            return
        if self._every_n(runner.iter + 1) or (self.save_last and runner.iter + 1 == runner.max_iters):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            runner.checkpointer.save_periodic(runner.iter + 1)

    def after_val_epoch(self, runner: RunContext, metrics: dict[str, Any] | None = None) -> None:
        if not metrics:
            runner.logger.warning("Since `metrics` is an empty dict, the best checkpoint is not updated "
                                  "in this evaluation.")
            return
        # Best checkpoints belong to training; runner.val() alone saves nothing.
        if self.save_best and runner.in_training and runner.checkpointer.out_dir is not None:
            self._save_best_checkpoint(runner, metrics)

    def after_train(self, runner: RunContext) -> None:
        if self.published_keys is None or not runner.is_main_process:
            return
        checkpointer = runner.checkpointer
        if self.save_last and checkpointer.last_ckpt is not None:
            checkpointer.publish(checkpointer.last_ckpt, self.published_keys)
        for path in checkpointer.best_ckpts.values():
            checkpointer.publish(path, self.published_keys)

    def _every_n(self, count: int) -> bool:
        dividend = count - self.save_begin
        return self.interval > 0 and dividend >= 0 and dividend % self.interval == 0

    # --- the best checkpoints ---------------------------------------------------
    def _save_best_checkpoint(self, runner: RunContext, metrics: dict[str, Any]) -> None:
        hub = runner.message_hub
        mid_epoch = self.by_epoch and runner.position()["batch_in_epoch"] != 0
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
        updated = False
        for key, rule in zip(self.key_indicators, self.rules, strict=True):
            if key not in metrics:
                raise KeyError(f"save_best key {key!r} is not among the metrics {sorted(metrics)}; "
                               "set save_best to one of them")
            score = metrics[key]
            if score is None or not math.isfinite(float(score)):
                runner.logger.warning(f"{key} is {score}: not considered for the best checkpoint")
                continue
            info_keys = self._hub_keys(key)
            best = hub.get_info(info_keys[0], self.init_value_map[rule])
            if not self.is_better_than[key](score, best):
                continue
            updated = True
            name = f"best_{key}_{ckpt_filename}".replace("/", "_")
            runner.checkpointer.save_best(key, float(score), name, info_keys)
            runner.logger.info(f"The best checkpoint with {float(score):0.4f} {key} at {count} {unit} "
                               f"is saved to {name}.")
        # The periodic checkpoint written before this validation holds the old best in its
        # records; save it again so a resume knows the new best (and will not delete it).
        if updated and runner.checkpointer.last_ckpt is not None:
            if mid_epoch:
                runner.checkpointer.save_now("a new best checkpoint")
            else:
                runner.checkpointer.save_periodic(count)
