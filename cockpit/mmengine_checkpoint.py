"""Resuming from a checkpoint MMEngine wrote: its layout mapped onto Cockpit's, or a clear refusal.

``checkpoint.load_checkpoint`` already reads MMEngine's objects as plain data (see
``mmengine_unpickle``). This module maps what a resume needs:

- ``meta``: ``epoch`` and ``iter`` (epochs and iterations done, as in Cockpit); the batch
  within the epoch follows from them (an epoch-end checkpoint starts the next epoch);
- ``optimizer``: the same layout in both (torch's ``Optimizer.state_dict()``, plus
  ``loss_scaler`` for AMP): taken as it is;
- ``param_schedulers``: each MMEngine scheduler's state (``_global_step``, ``last_step``,
  ``_last_value``, ``base_values`` and its hyper-parameters) becomes Cockpit's
  ``{'count', 'scheduler'}`` around the torch scheduler of the same name, after checking that
  the config builds the same schedule (``begin``, ``end``, ``by_epoch`` and the shared
  hyper-parameters such as ``gamma`` or ``T_max``);
- ``message_hub``: ``log_scalars`` (``HistoryBuffer``s, which keep values but not their steps)
  become scalar histories: a ``train/`` series is taken as one value per iteration up to the
  checkpoint, any other series as evenly spaced up to it (exact for validation at a fixed
  interval); ``runtime_info`` is kept.

MMEngine stores no random state and no hook state in a checkpoint (hooks add their own keys,
which are kept for ``after_load_checkpoint``). What cannot be mapped is refused, naming what
to do instead: several optimizers (``OptimWrapperDict``), schedulers that differ from the
config's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cockpit.checkpoint import check_position, is_cockpit_format
from cockpit.errors import CheckpointError
from cockpit.history import ScalarHistory
from cockpit.mmengine_unpickle import HISTORY_BUFFER
from cockpit.schedulers import MMENGINE_INF

#: What a failed mapping suggests instead.
USE_LOAD_FROM = "use load_from to start from its weights only, or resume with the config it was trained with"

# Torch scheduler state entries that are bookkeeping, not the schedule's hyper-parameters.
_BOOKKEEPING = frozenset({"base_lrs", "last_epoch", "verbose", "param_name", "begin", "end", "by_epoch",
                          "base_values", "last_step"})


def is_mmengine_checkpoint(checkpoint: Any) -> bool:
    """Whether ``checkpoint`` (a loaded dict) is a training checkpoint MMEngine wrote."""
    if not isinstance(checkpoint, Mapping):
        return False
    meta, hub = checkpoint.get("meta"), checkpoint.get("message_hub")
    if not isinstance(meta, Mapping) or is_cockpit_format(checkpoint):
        return False
    scalars = hub.get("log_scalars") if isinstance(hub, Mapping) else None
    from_buffers = isinstance(scalars, Mapping) and any(
        isinstance(v, Mapping) and v.get(HISTORY_BUFFER) for v in scalars.values())
    return "mmengine_version" in meta or from_buffers


def to_cockpit(checkpoint: Mapping[str, Any], path: str | os.PathLike, schedulers: Sequence[Any],
               epoch_length: int | None, window_size: int) -> dict[str, Any]:
    """An MMEngine training checkpoint in Cockpit's layout (a new dict; its other keys are kept).

    Args:
        checkpoint: the loaded MMEngine checkpoint.
        path: its file, for messages.
        schedulers: the run's ``ParamScheduler``s, whose torch schedulers receive the mapped state.
        epoch_length: iterations per epoch of an epoch-based run (None for an iteration-based one).
        window_size: the hub's window, for the scalar histories.

    Raises:
        CheckpointError: what cannot be mapped, and what to do instead.
    """
    meta = checkpoint.get("meta")
    epoch, iteration = check_position(meta, path)
    batch_in_epoch = 0
    if epoch_length:
        offset = iteration - epoch * epoch_length
        batch_in_epoch = offset if 0 <= offset < epoch_length else 0
    mapped = dict(checkpoint)
    mapped["meta"] = {**meta, "epoch": epoch, "iter": iteration, "batch_in_epoch": batch_in_epoch,
                      "source": "mmengine"}
    mapped["message_hub"] = _hub(checkpoint.get("message_hub"), path, iteration, window_size)
    optimizer = checkpoint.get("optimizer")
    if isinstance(optimizer, Mapping) and "param_groups" not in optimizer and optimizer:
        raise CheckpointError(f"{path} holds the state of several optimizers ({', '.join(map(str, optimizer))}, "
                              f"an MMEngine OptimWrapperDict); Cockpit trains with one optimizer: {USE_LOAD_FROM}")
    if "param_schedulers" in checkpoint:
        mapped["param_schedulers"] = _schedulers(checkpoint["param_schedulers"], path, schedulers)
    return mapped


def _hub(hub: Any, path: str | os.PathLike, iteration: int, window_size: int) -> dict[str, Any]:
    if not isinstance(hub, Mapping) or not isinstance(hub.get("log_scalars"), Mapping):
        raise CheckpointError(f"{path}: its message_hub is not in MMEngine's layout (log_scalars, runtime_info, "
                              f"resumed_keys): {USE_LOAD_FROM}")
    histories = {}
    for key, buffer in hub["log_scalars"].items():
        if not (isinstance(buffer, Mapping) and buffer.get(HISTORY_BUFFER)):
            raise CheckpointError(f"{path}: message_hub.log_scalars[{key!r}] is not an MMEngine HistoryBuffer: "
                                  f"{USE_LOAD_FROM}")
        values = buffer["log_history"]
        history = ScalarHistory(window_size)
        count = len(values)
        for index, value in enumerate(values):
            if str(key).startswith("train/"):
                step = iteration - count + index  # one value per iteration, the last one at iter - 1
            else:
                step = round((index + 1) * iteration / count)
            history.update(float(value), max(step, 0))
        histories[str(key)] = history.state_dict()
    info = hub.get("runtime_info", {})
    return {"log_scalars": histories, "runtime_info": dict(info) if isinstance(info, Mapping) else {},
            "resumed_keys": dict(hub.get("resumed_keys", {}))}


def _schedulers(states: Any, path: str | os.PathLike, schedulers: Sequence[Any]) -> list[dict[str, Any]]:
    if isinstance(states, Mapping):
        raise CheckpointError(f"{path} holds parameter schedulers for several optimizers "
                              f"({', '.join(map(str, states))}); Cockpit trains with one optimizer: {USE_LOAD_FROM}")
    if not isinstance(states, list) or len(states) != len(schedulers):
        count = len(states) if isinstance(states, list) else type(states).__name__
        raise CheckpointError(f"{path} has {count} parameter schedulers but the config builds {len(schedulers)}: "
                              f"{USE_LOAD_FROM}")
    return [_scheduler(state, path, index, scheduler) for index, (state, scheduler)
            in enumerate(zip(states, schedulers, strict=True))]


def _scheduler(state: Any, path: str | os.PathLike, index: int, scheduler: Any) -> dict[str, Any]:
    name = f"parameter scheduler {index} ({type(scheduler.scheduler).__name__})"
    required = ("begin", "end", "by_epoch", "_global_step", "_last_value", "base_values")
    if not isinstance(state, Mapping) or any(key not in state for key in required):
        raise CheckpointError(f"{path}: {name} has no MMEngine scheduler state ({', '.join(required)}): "
                              f"{USE_LOAD_FROM}")
    if state.get("param_name", "lr") != "lr":
        raise CheckpointError(f"{path}: {name} schedules {state['param_name']!r}; Cockpit schedules the learning "
                              f"rate only: {USE_LOAD_FROM}")
    ours = scheduler.scheduler.state_dict()
    end = math.inf if state["end"] >= MMENGINE_INF else state["end"]
    differences = [(key, theirs, mine) for key, theirs, mine in (
        ("begin", state["begin"], scheduler.begin), ("end", end, scheduler.end),
        ("by_epoch", state["by_epoch"], scheduler.by_epoch)) if theirs != mine]
    differences += [(key, state[key], ours[key]) for key in sorted(set(state) & set(ours) - _BOOKKEEPING)
                    if not key.startswith("_") and not _same(state[key], ours[key])]
    if differences:
        shown = "; ".join(f"{key}: {theirs!r} in the file, {mine!r} in the config" for key, theirs, mine in differences)
        raise CheckpointError(f"{path}: {name} differs from the config's ({shown}): {USE_LOAD_FROM}")
    groups = len(ours.get("base_lrs", []))
    if len(state["_last_value"]) != groups or len(state["base_values"]) != groups:
        raise CheckpointError(f"{path}: {name} has {len(state['base_values'])} parameter groups, the optimizer "
                              f"{groups}: {USE_LOAD_FROM}")
    count = state["_global_step"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CheckpointError(f"{path}: {name} has a step count of {count!r}: {USE_LOAD_FROM}")
    # Steps taken inside [begin, end): torch's last_epoch, as Cockpit's ParamScheduler steps it.
    inside = max(0, min(count, scheduler.end - 1) - scheduler.begin) if count >= scheduler.begin else 0
    torch_state = {**ours, "last_epoch": int(inside), "_step_count": int(inside) + 1,
                   "_last_lr": [float(v) for v in state["_last_value"]],
                   "base_lrs": [float(v) for v in state["base_values"]]}
    return {"count": count, "scheduler": torch_state}


def _same(theirs: Any, mine: Any) -> bool:
    if isinstance(theirs, (int, float)) and isinstance(mine, (int, float)):
        return math.isclose(theirs, mine, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(theirs, Mapping) and isinstance(mine, Mapping):  # milestones: Counter({2: 1})
        return dict(theirs) == dict(mine)
    return theirs == mine


__all__ = ["USE_LOAD_FROM", "is_mmengine_checkpoint", "to_cockpit"]
