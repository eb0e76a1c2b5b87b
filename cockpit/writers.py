"""Scalar writers: JSON lines (one object per logging step) and TensorBoard event files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class JsonLinesWriter:
    """Appends ``{"step": .., "<tag>": value, ...}`` lines to ``path``.

    Non-finite values are written as ``null`` so every line stays valid JSON.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add_scalars(self, values: dict[str, Any], step: int, **extra: Any) -> None:
        record: dict[str, Any] = {"step": step, **extra}
        for tag, value in values.items():
            value = float(value)
            record[tag] = value if math.isfinite(value) else None
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

    def add_scalars(self, values: dict[str, Any], step: int, **extra: Any) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))
                                       for tag, value in values.items()])
        self._writer.add_summary(summary, step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
