"""Scalar writers: JSON lines in MMEngine's layout (one object per logging step) and TensorBoard event files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def json_line(values: dict[str, Any], step: int) -> str:
    """The line ``JsonLinesWriter`` appends for ``values`` at ``step`` (made once for several files)."""
    record = dict(values)
    record.setdefault("step", step)  # a "step" among the values wins, as in MMEngine
    return json.dumps(record) + "\n"


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
        self.write_line(json_line(values, step))

    def write_line(self, line: str) -> None:
        """Append ``line`` (a ``json_line``), flushed: the file is whole after every logging step."""
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

class TensorboardWriter:
    """Writes scalars into a tensorboardX event file under ``log_dir``, on the caller's thread.

    All the scalars of one logging step go into one summary (one event). tensorboardX's
    ``EventsWriter`` frames and checksums each event (with the ``crc32c`` package's native CRC)
    and appends it to the file, flushed at most every ``flush_secs`` and on ``close``.
    tensorboardX's ``FileWriter`` is not used: it pickles each event through a multiprocessing
    queue to two threads, which costs the training thread more in lost GIL time than writing the
    few dozen bytes itself.

    Args:
        log_dir: the folder of the event file (``events.out.tfevents.<time>.<host>``).
        flush_secs: the longest a written event waits in the buffer.
    """

    def __init__(self, log_dir: str | os.PathLike, flush_secs: float = 10.0) -> None:
        # Imported here: only runs that log to TensorBoard pay for tensorboardX.
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        self._event, self._summary = Event, Summary
        folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(folder / "events"))  # writes the file-version event
        self.flush_secs = flush_secs
        self._closed = False
        self.flush()

    def add_scalars(self, values: dict[str, Any], step: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))
                                       for tag, value in values.items()])
        self._writer.write_event(self._event(wall_time=time.time(), step=step, summary=summary))
        if time.monotonic() - self._flushed_at >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        self._writer.flush()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
