"""Restoring a run from a checkpoint: every part is checked first, then all of it is applied, or none.

A resume that fails half-way would leave a live run with the checkpoint's weights and its
own optimizer, or the file's position and the run's history. So ``RestorePlan.check``
reads and checks every part without changing anything:

- the weights fit the model (every key, every shape, tensors only);
- the optimizer state has the optimizer's parameter groups, with per-parameter state of the
  parameters' shapes, and loads into a shallow copy of the optimizer;
- the schedulers' states are as many as the config builds, each of the same kind;
- the message hub's state parses (``MessageHub.check_state_dict``);
- the checkpointer's records, the hooks' states and the random states are well-formed;
- ``meta.epoch`` and ``meta.iter`` are whole numbers.

An MMEngine checkpoint is first mapped onto Cockpit's layout (``mmengine_checkpoint``).
``RestorePlan.apply`` then changes the run: the hooks' states first (the only step that runs
code outside Cockpit; if one hook refuses its state, those already loaded get theirs back and
nothing else has changed), then the weights, optimizer, schedulers, hub, records, position and
random states, which were all checked.

A live resume that jumps back abandons what the run did after the checkpoint. That segment is
kept, not lost: ``abandoned_branch`` takes each scalar's points after the checkpoint's iteration
(at most ``BRANCH_POINTS`` each, every bucket's lowest and highest kept so a divergence still
shows), and the hub's ``branches`` info holds the last ``MAX_BRANCHES`` of them, saved in every
checkpoint with the rest of the hub, so views draw them dimmed beside the history.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cockpit import checkpoint as ckpt
from cockpit import mmengine_checkpoint
from cockpit.errors import CheckpointError

if TYPE_CHECKING:
    from cockpit.hooks.dispatch import HookDispatcher
    from cockpit.hub import MessageHub
    from cockpit.interface import RunContext

#: The most points an abandoned branch keeps of each scalar, and how many branches a run keeps.
BRANCH_POINTS, MAX_BRANCHES = 512, 8


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or similar) wrapper."""
    return getattr(model, "module", model)


@dataclass
class RestorePlan:
    """Everything a resume will apply, checked. Build it with ``RestorePlan.check``."""

    filename: str
    checkpoint: dict[str, Any]
    weights: Mapping[str, torch.Tensor]
    epoch: int
    iteration: int
    batch_in_epoch: int
    optimizer: dict[str, Any] | None = None
    schedulers: list[dict[str, Any]] | None = None
    hub: dict[str, Any] | None = None
    records: dict[str, Any] | None = None
    hooks: list[tuple[str, Any, Any]] = field(default_factory=list)
    rng: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def check(cls, run: RunContext, hooks: HookDispatcher, checkpoint: Mapping[str, Any],
              filename: str | os.PathLike, resume_optimizer: bool = True,
              resume_param_scheduler: bool = True) -> RestorePlan:
        """Read and check every part of ``checkpoint`` against ``run``; change nothing.

        Raises:
            CheckpointError: the first part that does not fit, naming the file and what to do.
        """
        checkpoint = dict(ckpt.check_cockpit_checkpoint(checkpoint, filename))
        if mmengine_checkpoint.is_mmengine_checkpoint(checkpoint):
            loop = run.train_loop
            checkpoint = mmengine_checkpoint.to_cockpit(
                checkpoint, filename, run.param_schedulers,
                getattr(loop, "epoch_length", None) if run.is_epoch_based else None, run.message_hub.window_size)
        meta = checkpoint["meta"]
        epoch, iteration = ckpt.check_position(meta, filename)
        batch_in_epoch = _whole(meta.get("batch_in_epoch", 0), "meta.batch_in_epoch", filename)
        plan = cls(str(filename), checkpoint, _check_weights(run, checkpoint.get("state_dict"), filename),
                   epoch, iteration, batch_in_epoch)
        plan._check_world(run, meta)
        if run.optim_wrapper is not None and resume_optimizer:
            if "optimizer" in checkpoint:
                plan.optimizer = _check_optimizer(run.optim_wrapper, checkpoint["optimizer"], filename)
            else:
                plan.warnings.append(f"{filename} has no optimizer state; the optimizer starts fresh")
        if resume_param_scheduler and run.param_schedulers:
            if "param_schedulers" in checkpoint:
                plan.schedulers = _check_schedulers(run.param_schedulers, checkpoint["param_schedulers"], filename)
            else:
                plan.warnings.append(f"{filename} has no parameter scheduler state; the schedules start over")
        elif resume_param_scheduler and checkpoint.get("param_schedulers"):
            plan.warnings.append(f"{filename} has parameter schedulers but the config builds none: the learning "
                                 "rate stays where the checkpoint's optimizer left it")
        try:
            plan.hub = run.message_hub.check_state_dict(checkpoint["message_hub"])
        except ValueError as error:
            raise CheckpointError(f"{filename}: its message_hub cannot be restored ({error})") from None
        if "checkpointer" in checkpoint:
            plan.records = _check_records(checkpoint["checkpointer"], filename)
        states = checkpoint.get("hooks", {})
        if not isinstance(states, Mapping):
            raise CheckpointError(f"{filename}: 'hooks' is a {type(states).__name__}, not a dict of hook states")
        plan.hooks = [(name, hook, states[name]) for name, hook in zip(hooks.names, hooks.hooks, strict=True)
                      if states.get(name) is not None]
        if "rng" in checkpoint:
            plan.rng = _check_rng(checkpoint["rng"], filename)
        return plan

    def _check_world(self, run: RunContext, meta: Mapping[str, Any]) -> None:
        seed = meta.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool) and seed != run.seed:
            self.warnings.append(f"{self.filename} was trained with seed {seed} and this run uses {run.seed}: the "
                                 f"data order differs from the run that wrote it (randomness.seed={seed} follows it)")
        world_size = _whole(meta.get("world_size", 1), "meta.world_size", self.filename)
        batch_size = run.train_batch_size or 1
        if world_size != run.world_size and "samples_in_epoch" in meta:
            samples = _whole(meta["samples_in_epoch"], "meta.samples_in_epoch", self.filename)
            self.batch_in_epoch = samples // (batch_size * run.world_size)
            self.warnings.append(f"{self.filename} was written by {world_size} processes and this run has "
                                 f"{run.world_size}: continuing at batch {self.batch_in_epoch} of the epoch")
        old_batch = meta.get("batch_size")
        if old_batch is not None:
            old_batch = _whole(old_batch, "meta.batch_size", self.filename)
            if world_size * old_batch != run.world_size * (run.train_batch_size or old_batch):
                self.warnings.append("the global batch size differs from the checkpoint's run; "
                                     "the learning-rate schedule and data position may not match")

    def apply(self, run: RunContext, info: Mapping[str, Any] | None = None) -> None:
        """Change the run to the checkpoint's state: hooks first (undone if one fails), then the rest.

        The checkpointer's own records (``self.records``) are its to restore. ``info`` is runtime
        info that replaces the checkpoint's in the restored hub (a fork's lineage, the branches).

        Raises:
            CheckpointError: a hook refused its state; nothing changed.
        """
        self._apply_hooks(run)
        unwrap_model(run.model).load_state_dict(self.weights)
        if self.optimizer is not None:
            run.optim_wrapper.load_state_dict(self.optimizer)
        if self.schedulers is not None:
            for scheduler, state in zip(run.param_schedulers, self.schedulers, strict=True):
                scheduler.load_state_dict(state)
        run.message_hub.load_state_dict(_with_info(self.checkpoint["message_hub"], info or {}))
        loop = run.train_loop
        loop.restore_position(self.epoch, self.iteration, self.batch_in_epoch)
        if run.optim_wrapper is not None:
            run.optim_wrapper.initialize_count_status(loop.iter, loop.max_iters)
        if self.rng is not None:
            ckpt.set_rng_state(self.rng)
        for warning in self.warnings:
            run.logger.warning(warning)

    def _apply_hooks(self, run: RunContext) -> None:
        applied: list[tuple[str, Any, Any]] = []
        for name, hook, state in self.hooks:
            before = hook.state_dict()
            try:
                hook.load_state_dict(state)
            except Exception as error:
                for done_name, done_hook, done_before in reversed(applied):
                    try:
                        done_hook.load_state_dict(done_before)
                    except Exception as undo_error:  # noqa: BLE001 - reported, the original error is raised
                        run.logger.error(f"could not give {done_name} its state back: {undo_error}")
                raise CheckpointError(f"{self.filename}: hook {name} could not load its state "
                                      f"({type(error).__name__}: {error}); nothing was changed") from error
            applied.append((name, hook, before))


def _with_info(state: Mapping[str, Any], info: Mapping[str, Any]) -> Mapping[str, Any]:
    """A hub state (either layout) whose runtime info has ``info`` on top; ``state`` is not changed."""
    if not info:
        return state
    key = "runtime_info" if "log_scalars" in state else "info"
    return {**state, key: {**state.get(key, {}), **info}}


# --- abandoned branches ------------------------------------------------------------------------
def abandoned_branch(hub: MessageHub, iteration: int, checkpoint: str) -> dict[str, Any] | None:
    """What the run did after ``iteration``, which a resume to ``checkpoint`` is about to drop, or None.

    ``{"at": iteration, "checkpoint": name, "scalars": {key: {"steps": [...], "values": [...]}}}``,
    each scalar at most ``BRANCH_POINTS`` points.
    """
    scalars = {}
    for key, history in list(hub.log_scalars.items()):
        steps, _, lows, highs = history.series()
        first = next((index for index, step in enumerate(steps) if step > iteration), None)
        if first is None:
            continue
        kept_steps, kept_values = _extremes(steps[first:], lows[first:], highs[first:], BRANCH_POINTS)
        scalars[key] = {"steps": kept_steps, "values": kept_values}
    if not scalars:
        return None
    return {"at": int(iteration), "checkpoint": os.path.basename(checkpoint), "scalars": scalars}


def _extremes(steps: list[int], lows: list[float], highs: list[float], limit: int) -> tuple[list[int], list[float]]:
    """At most ``limit`` points: each of ``limit // 2`` buckets as its lowest, then highest, point."""
    if len(steps) <= limit // 2:
        return [int(s) for s in steps], [float(v) for v in lows]
    kept: list[tuple[int, float]] = []
    for bucket in np.array_split(np.arange(len(steps)), limit // 2):
        low = min(bucket, key=lambda i: lows[i] if np.isfinite(lows[i]) else np.inf)
        high = max(bucket, key=lambda i: highs[i] if np.isfinite(highs[i]) else -np.inf)
        points = {int(low): (int(steps[low]), float(lows[low])), int(high): (int(steps[high]), float(highs[high]))}
        kept += [points[index] for index in sorted(points)]
    return [step for step, _ in kept], [value for _, value in kept]


def kept_branches(hub: MessageHub, branch: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The hub's ``branches`` with ``branch`` added (the newest ``MAX_BRANCHES``), or None if nothing new."""
    if branch is None:
        return None
    earlier = hub.get_info("branches") or []
    return [*(b for b in earlier if isinstance(b, dict)), branch][-MAX_BRANCHES:]


# --- the checks ------------------------------------------------------------------------------
def _whole(value: Any, name: str, filename: str | os.PathLike) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{filename}: {name} must be a whole number >= 0, found {value!r}")
    return value


def _check_weights(run: RunContext, theirs: Any, filename: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    if not isinstance(theirs, Mapping):
        raise CheckpointError(f"{filename}: 'state_dict' is a {type(theirs).__name__}, not the model's weights")
    own = unwrap_model(run.model).state_dict()
    problems = [f"missing {k}" for k in own if k not in theirs]
    problems += [f"unexpected {k}" for k in theirs if k not in own]
    problems += [f"{k} is a {type(theirs[k]).__name__}, not a tensor" for k in own
                 if k in theirs and not isinstance(theirs[k], torch.Tensor)]
    problems += [f"{k}: {tuple(theirs[k].shape)} in the file, {tuple(v.shape)} in the model"
                 for k, v in own.items() if isinstance(theirs.get(k), torch.Tensor)
                 and tuple(theirs[k].shape) != tuple(v.shape)]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckpointError(f"{filename} does not fit this model ({shown}); was it saved by another config?")
    return theirs


def _check_optimizer(optim_wrapper: Any, state: Any, filename: str | os.PathLike) -> dict[str, Any]:
    where = f"{filename}: the optimizer state"
    if not isinstance(state, Mapping) or not isinstance(state.get("param_groups"), list) \
            or not isinstance(state.get("state"), Mapping):
        raise CheckpointError(f"{where} is not a torch optimizer state (param_groups, state)")
    if "loss_scaler" in state and not isinstance(state["loss_scaler"], Mapping):
        raise CheckpointError(f"{where} has a loss_scaler of type {type(state['loss_scaler']).__name__}")
    optimizer = optim_wrapper.optimizer
    inner = {k: v for k, v in state.items() if k != "loss_scaler"}
    groups, ours = inner["param_groups"], optimizer.param_groups
    if len(groups) != len(ours):
        raise CheckpointError(f"{where} has {len(groups)} parameter groups, this optimizer {len(ours)}; "
                              "was it saved by another config?")
    params = {}
    for index, (group, own) in enumerate(zip(groups, ours, strict=True)):
        if not isinstance(group, Mapping) or not isinstance(group.get("params"), list) \
                or len(group["params"]) != len(own["params"]):
            size = len(group["params"]) if isinstance(group, Mapping) and isinstance(group.get("params"), list) else "?"
            raise CheckpointError(f"{where}: parameter group {index} has {size} parameters, this optimizer's "
                                  f"{len(own['params'])}; was it saved by another config?")
        params.update(zip(group["params"], own["params"], strict=True))
    for key, entry in inner["state"].items():
        param = params.get(key)
        if param is None or not isinstance(entry, Mapping):
            raise CheckpointError(f"{where} has state for parameter {key!r}, which no parameter group lists")
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise CheckpointError(f"{where}: {name} of parameter {key} is {tuple(value.shape)}, the parameter "
                                      f"{tuple(param.shape)}; was it saved by another config?")
    try:
        copy.copy(optimizer).load_state_dict(copy.copy(inner))  # what torch itself checks, on a copy
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
        raise CheckpointError(f"{where} does not load ({type(error).__name__}: {error})") from None
    return dict(state)


def _public_keys(state: Mapping[str, Any]) -> set[str]:
    return {k for k in state if not str(k).startswith("_") and k != "verbose"}


def _check_schedulers(schedulers: list[Any], states: Any, filename: str | os.PathLike) -> list[dict[str, Any]]:
    if not isinstance(states, list) or len(states) != len(schedulers):
        count = len(states) if isinstance(states, list) else type(states).__name__
        raise CheckpointError(f"{filename} has {count} parameter schedulers but the config builds "
                              f"{len(schedulers)}; resume with the config it was trained with")
    for index, (scheduler, state) in enumerate(zip(schedulers, states, strict=True)):
        kind = type(scheduler.scheduler).__name__
        if not isinstance(state, Mapping) or not isinstance(state.get("scheduler"), Mapping):
            raise CheckpointError(f"{filename}: parameter scheduler {index} ({kind}) has no saved state")
        _whole(state.get("count"), f"parameter scheduler {index}'s count", filename)
        if _public_keys(state["scheduler"]) != _public_keys(scheduler.scheduler.state_dict()):
            raise CheckpointError(f"{filename}: parameter scheduler {index} is not a {kind} in the file "
                                  f"(its state has {sorted(_public_keys(state['scheduler']))}); resume with the "
                                  "config it was trained with")
    return states


def _check_records(state: Any, filename: str | os.PathLike) -> dict[str, Any]:
    ok = isinstance(state, Mapping)
    last = state.get("last_ckpt") if ok else None
    ids = state.get("keep_ckpt_ids", []) if ok else None
    best = state.get("best_ckpts", {}) if ok else None
    ok = ok and (last is None or isinstance(last, str)) and isinstance(ids, list) \
        and all(isinstance(i, int) and not isinstance(i, bool) for i in ids) \
        and isinstance(best, Mapping) and all(isinstance(v, str) for v in best.values())
    if not ok:
        raise CheckpointError(f"{filename}: the checkpointer's records (last_ckpt, keep_ckpt_ids, best_ckpts) "
                              "are malformed")
    return {"last_ckpt": last, "keep_ckpt_ids": list(ids), "best_ckpts": dict(best)}


def _check_rng(state: Any, filename: str | os.PathLike) -> dict[str, Any]:
    """Set each random state on a fresh generator: what would fail on the real ones fails here."""
    try:
        python, numpy = state["python"], state["numpy"]
        random.Random().setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
        np.random.RandomState().set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                                           numpy["has_gauss"], numpy["cached"]))
        torch.Generator().set_state(state["torch"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError) as error:
        raise CheckpointError(f"{filename}: its random states cannot be restored "
                              f"({type(error).__name__}: {error})") from None
    return state


__all__ = ["BRANCH_POINTS", "MAX_BRANCHES", "RestorePlan", "abandoned_branch", "kept_branches", "unwrap_model"]
