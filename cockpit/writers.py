"""Scalar writers: JSON lines in MMEngine's layout (one object per logging step) and TensorBoard event files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class JsonLinesWriter:
    """Appends one JSON object a line to ``path``, in MMEngine's ``LocalVisBackend`` layout.

    A line is the logged values followed by ``"step"``:
    ``{"lr": 0.1, "data_time": 0.0007, "loss": 1.0762, "time": 0.0228, "epoch": 1, "iter": 4, "step": 4}``.
    Values are written as ``json`` writes them (a non-finite one as ``NaN``, as MMEngine does), so
    MMEngine's log-analysis tools read the file unchanged.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add_scalars(self, values: dict[str, Any], step: int) -> None:
        record = dict(values)
        record.setdefault("step", step)  # a "step" among the values wins, as in MMEngine
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorboardWriter:
    """Writes scalars into a tensorboardX event file under ``log_dir``.

    All the scalars of one logging step go into one summary (one event), not one
    event per scalar: the writer's queue and checksum are paid once per step.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        # Imported here: only runs that log to TensorBoard pay for it.
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.writer import FileWriter

        self._summary = Summary
        self._writer = FileWriter(logdir=str(log_dir), flush_secs=10)

    def add_scalars(self, values: dict[str, Any], step: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))
                                       for tag, value in values.items()])
        self._writer.add_summary(summary, step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
