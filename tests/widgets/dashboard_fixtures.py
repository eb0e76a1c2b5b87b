"""Run folders written as runs write them (run.json, vis_data/scalars.json, lineage.json), for the
dashboard's tests and ``benchmarks/dashboard.py``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def make_run(folder: Path, *, status: str = "finished", iters: int = 16, losses: tuple[float, ...] = (1.0, 0.8),
             accuracy: tuple[float, ...] = (0.5,), live: bool = False, lineage: dict | None = None) -> Path:
    """A run folder with the files a run leaves: run.json, vis_data/scalars.json, lineage.json for a fork."""
    folder.mkdir(parents=True)
    (folder / "vis_data").mkdir()
    record = {"experiment_name": folder.parent.name, "status": status, "epoch": 2, "iter": iters, "max_epochs": 2,
              "max_iters": 16, "by_epoch": True, "last_checkpoint": str(folder.parent / "epoch_2.pth"),
              "pid": os.getpid() if live else 999_999_999, "updated": time.time()}
    (folder / "run.json").write_text(json.dumps(record))
    if live:
        (folder / "cockpit.json").write_text("{}")
    lines = [{"lr": 0.1, "loss": loss, "epoch": 1, "iter": 4 * (index + 1), "step": 4 * (index + 1)}
             for index, loss in enumerate(losses)]
    lines += [{"accuracy/top1": value, "time": 0.1, "step": index + 1} for index, value in enumerate(accuracy)]
    (folder / "vis_data" / "scalars.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if lineage is not None:
        (folder / "lineage.json").write_text(json.dumps(lineage))
    return folder
