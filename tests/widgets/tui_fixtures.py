"""A deterministic run, as a hub snapshot, for the terminal cockpit's snapshot tests and benchmark.

``build_snapshot()`` returns what ``MessageHub.snapshot()`` would for a run of 10 epochs of 100
iterations stopped partway: ``train/loss``, ``train/lr``, ``train/time`` and ``train/data_time``
every iteration from fixed formulas, ``val/accuracy/top1`` at epoch ends, the default hook table
with timings, three checkpoints, a dozen log lines (one WARNING, one ERROR), status ``running``.
Nothing in it depends on the clock or the machine. ``make_checkpoint_files`` creates the files it
names, in a fixed folder (``CHECKPOINT_DIR``), for whoever wants to open them.

Imports nothing but the standard library, so ``benchmarks/tui.py`` can use it too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The cockpit's clock in snapshot tests: "now" for elapsed times.
FIXED_TIME = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC
STARTED = FIXED_TIME - 754.0  # the run started 12:34 ago
ITERS_PER_EPOCH = 100
MAX_EPOCHS = 10
NAME = "digits_20260101_094726"
CHECKPOINT_DIR = Path("/tmp/cockpit-snapshot-fixture/work_dirs/digits")

#: ``(file name, epoch, iter)``, oldest first.
CHECKPOINTS = (
    ("epoch_3.pth", 3, 300),
    ("best_accuracy_top1_epoch_4.pth", 4, 400),
    ("iter_412.pth", 4, 412),
)

#: The default hooks of an epoch-based run with validation, in execution order per stage
#: (what ``MessageHub.set_hooks_table`` publishes).
HOOKS: tuple = (
    ("before_run", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("BELOW_NORMAL", 60, "LoggerHook"))),
    ("before_train", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("NORMAL", 50, "IterTimerHook"),
                      ("VERY_LOW", 90, "CheckpointHook"))),
    ("before_train_epoch", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("NORMAL", 50, "IterTimerHook"),
                            ("NORMAL", 50, "DistSamplerSeedHook"))),
    ("before_train_iter", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("NORMAL", 50, "IterTimerHook"))),
    ("after_train_iter", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("NORMAL", 50, "IterTimerHook"),
                          ("BELOW_NORMAL", 60, "LoggerHook"), ("LOW", 70, "ParamSchedulerHook"),
                          ("VERY_LOW", 90, "CheckpointHook"))),
    ("after_train_epoch", (("LOW", 70, "ParamSchedulerHook"), ("VERY_LOW", 90, "CheckpointHook"))),
    ("before_val", (("VERY_HIGH", 10, "RuntimeInfoHook"),)),
    ("before_val_epoch", (("NORMAL", 50, "IterTimerHook"),)),
    ("before_val_iter", (("NORMAL", 50, "IterTimerHook"),)),
    ("after_val_iter", (("NORMAL", 50, "IterTimerHook"),)),
    ("after_val_epoch", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("BELOW_NORMAL", 60, "LoggerHook"),
                         ("VERY_LOW", 90, "CheckpointHook"))),
    ("after_val", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("NORMAL", 50, "IterTimerHook"))),
    ("after_train", (("VERY_HIGH", 10, "RuntimeInfoHook"), ("VERY_LOW", 90, "CheckpointHook"))),
    ("after_run", (("BELOW_NORMAL", 60, "LoggerHook"),)),
)

#: Mean milliseconds per call, per (stage, hook); calls follow from the position of the run.
HOOK_MS = {
    "before_run/RuntimeInfoHook": 0.016, "before_run/LoggerHook": 0.83,
    "before_train/RuntimeInfoHook": 0.023, "before_train/IterTimerHook": 0.004,
    "before_train/CheckpointHook": 0.135,
    "before_train_epoch/RuntimeInfoHook": 0.0022, "before_train_epoch/IterTimerHook": 0.0013,
    "before_train_epoch/DistSamplerSeedHook": 0.0058,
    "before_train_iter/RuntimeInfoHook": 0.0084, "before_train_iter/IterTimerHook": 0.0032,
    "after_train_iter/RuntimeInfoHook": 0.0101, "after_train_iter/IterTimerHook": 0.0115,
    "after_train_iter/LoggerHook": 6.2, "after_train_iter/ParamSchedulerHook": 0.0143,
    "after_train_iter/CheckpointHook": 0.0011,
    "after_train_epoch/ParamSchedulerHook": 0.0011, "after_train_epoch/CheckpointHook": 48.4,
    "before_val/RuntimeInfoHook": 0.0165, "before_val_epoch/IterTimerHook": 0.0059,
    "before_val_iter/IterTimerHook": 0.0108, "after_val_iter/IterTimerHook": 0.0059,
    "after_val_epoch/RuntimeInfoHook": 0.011, "after_val_epoch/LoggerHook": 0.27,
    "after_val_epoch/CheckpointHook": 21.9,
    "after_val/RuntimeInfoHook": 0.0061, "after_val/IterTimerHook": 0.0018,
}

#: The run's commands as it publishes them (``cockpit.commands.Command.describe``): what the footer,
#: the palette and the help screen are generated from.
COMMANDS = [
    {"name": "val", "label": "Validate", "key": "v", "description": "run validation now (mid-epoch too)",
     "args": [], "usage": "val", "confirm": None, "while_paused": True, "when": "live"},
    {"name": "save", "label": "Save checkpoint", "key": "s", "description": "save a resumable checkpoint now",
     "args": [], "usage": "save", "confirm": None, "while_paused": True, "when": "live"},
    {"name": "resume", "label": "Resume…", "key": "r",
     "description": "load a checkpoint into the live run and continue from it",
     "args": [{"name": "checkpoint", "help": "a checkpoint name or path, 'latest' or 'best'", "kind": "checkpoint",
               "choices": [], "optional": False}],
     "usage": "resume <checkpoint>", "confirm": "Resume from {0}? Training continues from that checkpoint's position.",
     "while_paused": True, "when": "live"},
    {"name": "pause", "label": "Pause", "key": "p", "description": "pause training (the process and its memory stay)",
     "args": [], "usage": "pause", "confirm": None, "while_paused": True, "when": "running"},
    {"name": "continue", "label": "Continue", "key": "p", "description": "continue a paused run",
     "args": [], "usage": "continue", "confirm": None, "while_paused": True, "when": "paused"},
    {"name": "stop", "label": "Stop", "key": None,
     "description": "stop after this iteration, saving a checkpoint ('stop nosave' skips the save)",
     "args": [{"name": "nosave", "help": "skip the final checkpoint", "kind": "choice", "choices": ["nosave"],
               "optional": True}],
     "usage": "stop [nosave]", "confirm": "Stop the run? It finishes this iteration and saves a checkpoint first.",
     "while_paused": True, "when": "live"},
    {"name": "set", "label": "Set learning rate…", "key": "l", "description": "set the learning rate of every parameter group",
     "args": [{"name": "lr", "help": "a learning rate (0.01), or a factor (*0.5) that scales it", "kind": "text",
               "choices": [], "optional": False}],
     "usage": "set <lr>", "confirm": None, "while_paused": True, "when": "live"},
]


# --- the series ---------------------------------------------------------------------------------
def loss_at(i: int) -> float:
    """A falling loss with a wobble and pseudo-noise from fixed sines (no RNG), and one spike."""
    noise = 0.06 * math.sin(i * 12.9898) * math.sin(i * 0.731 + 1.3)
    spike = 0.9 if i % 1000 == 377 else 0.0
    return 2.1 * math.exp(-i / 90.0) + 0.12 + 0.03 * math.sin(i / 17.0) + noise + spike


def lr_at(i: int, total: int) -> float:
    """Linear warm-up over the first epoch, then cosine down to 1e-5 over the rest of ``total``."""
    base = 3e-3
    if i < ITERS_PER_EPOCH:
        return base * (0.1 + 0.9 * i / ITERS_PER_EPOCH)
    progress = min(1.0, (i - ITERS_PER_EPOCH) / max(1, total - ITERS_PER_EPOCH))
    return 1e-5 + (base - 1e-5) * 0.5 * (1 + math.cos(math.pi * progress))


def accuracy_at(epoch: int) -> float:
    return round(0.97 - 0.55 * math.exp(-epoch / 1.3), 4)


def _series(steps: list[int], values: list[float]) -> dict[str, Any]:
    """One scalar in ``MessageHub.snapshot()``'s layout (one value per step, so mean = min = max)."""
    window = values[-10:]
    return {
        "steps": steps,
        "values": values,
        "mins": list(values),
        "maxs": list(values),
        "current": values[-1],
        "mean": sum(window) / len(window),
        "global_mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
        "count": len(values),
    }


def make_checkpoint_files(folder: Path = CHECKPOINT_DIR) -> list[Path]:
    """Create the (tiny, fake) checkpoint files the snapshot names; returns their paths.

    The cockpit lists the checkpoints the run reports (it removes those the run deletes), without
    looking at the disk; the files are for a benchmark or a test that opens one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _, _ in CHECKPOINTS:
        path = folder / name
        if not path.exists():
            path.write_bytes(b"not a real checkpoint\n")
        paths.append(path)
    return paths


def _logs() -> list[tuple[float, str, str]]:
    t = STARTED
    lines = [
        (t + 0.4, "INFO", f"Checkpoints will be saved to {CHECKPOINT_DIR}."),
        (t + 61.0, "INFO", "Epoch(train) [1][100/100]  lr: 2.9730e-03  eta: 0:10:09  time: 0.0712  "
                           "data_time: 0.0021  loss: 0.9183"),
        (t + 63.5, "INFO", "Epoch(val) [1][3/3]  accuracy/top1: 0.6300  data_time: 0.0041  time: 0.0315"),
        (t + 180.2, "INFO", "Epoch(train) [3][100/100]  lr: 2.8201e-03  eta: 0:08:11  time: 0.0698  "
                            "data_time: 0.0019  loss: 0.2874"),
        (t + 182.9, "INFO", "Epoch(val) [3][3/3]  accuracy/top1: 0.8754  data_time: 0.0039  time: 0.0311"),
        (t + 183.3, "INFO", f"Saving checkpoint at 3 epochs: {CHECKPOINT_DIR}/epoch_3.pth"),
        (t + 229.6, "WARNING", "skipped a step with a non-finite loss at iter 378 (1 skipped so far)"),
        (t + 242.1, "INFO", "Epoch(val) [4][3/3]  accuracy/top1: 0.9194  data_time: 0.0040  time: 0.0309"),
        (t + 242.8, "INFO", "The best checkpoint with 0.9194 accuracy/top1 at 4 epoch is saved to "
                            "best_accuracy_top1_epoch_4.pth."),
        (t + 250.0, "ERROR", "command 'export onnx' failed: OSError: [Errno 28] No space left on device"),
        (t + 251.4, "INFO", f"saved {CHECKPOINT_DIR}/iter_412.pth (command 'save')"),
        (t + 253.0, "INFO", "Epoch(train) [5][20/100]  lr: 2.5920e-03  eta: 0:06:59  time: 0.0703  "
                            "data_time: 0.0020  loss: 0.1952"),
    ]
    return [(round(when, 3), level, message) for when, level, message in lines]


def build_snapshot(iters: int = 430, checkpoint_dir: Path = CHECKPOINT_DIR) -> dict[str, Any]:
    """A hub snapshot of a run ``iters`` iterations in (10 epochs of 100 planned, unless ``iters`` is more).

    The default (430) is the snapshot tests' run; the benchmark asks for a million.
    """
    max_iters = max(MAX_EPOCHS * ITERS_PER_EPOCH, iters)
    max_epochs = max_iters // ITERS_PER_EPOCH
    steps = list(range(iters))
    epochs_done = iters // ITERS_PER_EPOCH
    val_steps = [ITERS_PER_EPOCH * e for e in range(1, epochs_done + 1)]
    scalars = {
        "train/lr": _series(steps, [lr_at(i, max_iters) for i in steps]),
        "train/loss": _series(steps, [loss_at(i) for i in steps]),
        "train/time": _series(steps, [0.07 + 0.002 * math.sin(i * 0.37) for i in steps]),
        "train/data_time": _series(steps, [0.002 + 0.0002 * math.sin(i * 0.91) for i in steps]),
    }
    if val_steps:
        scalars["val/accuracy/top1"] = _series(val_steps, [accuracy_at(s // ITERS_PER_EPOCH) for s in val_steps])

    calls_per_stage = {
        "before_run": 1, "before_train": 1, "before_train_epoch": epochs_done + 1,
        "before_train_iter": iters, "after_train_iter": iters, "after_train_epoch": epochs_done,
        "before_val": epochs_done, "before_val_epoch": epochs_done, "before_val_iter": 3 * epochs_done,
        "after_val_iter": 3 * epochs_done, "after_val_epoch": epochs_done, "after_val": epochs_done,
        "after_train": 0, "after_run": 0,
    }
    hook_timings = {}
    for key, ms in HOOK_MS.items():
        calls = calls_per_stage[key.partition("/")[0]]
        if calls:
            hook_timings[key] = (calls, round(calls * ms / 1000, 9))

    checkpoints = [{"path": str(checkpoint_dir / name), "epoch": epoch, "iter": step,
                    "time": round(STARTED + step * 0.6, 3)} for name, epoch, step in CHECKPOINTS]
    info = {
        "commands": COMMANDS,
        "pid": 4242,
        "started": STARTED,
        "experiment_name": NAME,
        "seed": 0,
        "work_dir": str(checkpoint_dir),
        "log_dir": str(checkpoint_dir / "20260101_094726"),
        "loop_stage": "train",
        "epoch": epochs_done,
        "iter": iters,
        "max_epochs": max_epochs,
        "max_iters": max_iters,
        "eta": 407.0,
        "iters_per_sec": 14.3,
        "last_ckpt": str(checkpoint_dir / CHECKPOINTS[-1][0]),
        "best_score": accuracy_at(4),
        "best_ckpt": str(checkpoint_dir / CHECKPOINTS[1][0]),
        "skipped_steps": 1,
    }
    return {
        "seq": 100_000 + iters,
        "name": NAME,
        "status": "running",
        "status_detail": "",
        "info": info,
        "scalars": scalars,
        "hooks": HOOKS,
        "hook_timings": hook_timings,
        "stage": "after_train_iter",
        "logs": _logs(),
        "checkpoints": checkpoints,
        "markers": [],
    }


async def until(pilot: Any, condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Let the app run until ``condition()`` is truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


#: A distributed run's ``rank_health`` info (what the health guard publishes on rank 0): four ranks,
#: rank 1 straggling (2.6x the median rank's own time), rank 2 hung for 63 s in a hook.
RANK_HEALTH = [
    {"rank": 0, "step_time": 0.121, "host_time": 0.012, "train_time": 0.109, "data_time": 0.002, "memory_mb": 812.4,
     "heartbeat": FIXED_TIME - 0.4, "iter": 430, "alert": "", "alert_step": 0.0, "own_time": 0.05,
     "straggler": False, "hung": False, "idle": 0.06, "where": ""},
    {"rank": 1, "step_time": 0.198, "host_time": 0.089, "train_time": 0.109, "data_time": 0.081, "memory_mb": 815.0,
     "heartbeat": FIXED_TIME - 0.5, "iter": 430, "alert": "", "alert_step": 0.0, "own_time": 0.13,
     "straggler": True, "hung": False, "idle": 0.09, "where": ""},
    {"rank": 2, "step_time": 0.122, "host_time": 0.013, "train_time": 0.109, "data_time": 0.002, "memory_mb": 809.9,
     "heartbeat": FIXED_TIME - 63.0, "iter": 417, "alert": "", "alert_step": 0.0, "own_time": 0.051,
     "straggler": False, "hung": True, "idle": 63.0, "where": "SlowRank.after_train_iter (cfg.py:12)"},
    {"rank": 3, "step_time": 0.119, "host_time": 0.011, "train_time": 0.108, "data_time": 0.002, "memory_mb": 811.2,
     "heartbeat": FIXED_TIME - 0.3, "iter": 430, "alert": "", "alert_step": 0.0, "own_time": 0.049,
     "straggler": False, "hung": False, "idle": 0.05, "where": ""},
]


def distributed_snapshot() -> dict[str, Any]:
    """``build_snapshot()`` of a 4-process run, with its ``rank_health`` (``RANK_HEALTH``)."""
    snapshot = build_snapshot()
    snapshot["info"]["rank_health"] = [dict(row) for row in RANK_HEALTH]
    snapshot["info"]["world_size"] = len(RANK_HEALTH)
    return snapshot
