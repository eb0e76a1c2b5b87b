"""The run folder and the run's logger.

Each run writes into ``work_dir/<timestamp>/``: the config as written and as
resolved, the log file, the scalars, and (while it serves views) its connection
and ``run.json`` files. Checkpoints go to ``work_dir`` itself, so a later run of
the same config finds them.

Every run gets a logger of its own (a notebook may hold two runs): it copies each
record into the hub, so views show the run's log, prints to the console if
asked, and writes the log file while a loop runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cockpit.config import Config
from cockpit.hub import MessageHub


def unique_timestamp(work_dir: Path) -> str:
    """A ``YYYYmmdd_HHMMSS`` name that no folder in ``work_dir`` has yet."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    candidate, n = stamp, 1
    while (work_dir / candidate).exists():
        n += 1
        candidate = f"{stamp}_{n}"
    return candidate


class RunFolder:
    """``work_dir/<timestamp>/``: made on first use, by the main process only.

    Args:
        work_dir: the run's work dir.
        timestamp: the run folder's name.
        cfg: the run's config (dumped into the folder).
        main: whether this process writes files (rank 0).
    """

    def __init__(self, work_dir: Path, timestamp: str, cfg: Config, main: bool = True) -> None:
        self.work_dir = work_dir
        self.timestamp = timestamp
        self.cfg = cfg
        self.main = main
        self._ready = False

    @property
    def path(self) -> Path:
        return self.work_dir / self.timestamp

    @property
    def log_file(self) -> Path:
        return self.path / f"{self.timestamp}.log"

    def prepare(self) -> None:
        """Make the folder and dump the config into it (once)."""
        if self._ready or not self.main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.dump_config()
        self._ready = True

    def dump_config(self) -> None:
        """Write the config into the run's folder: a verbatim copy and the resolved one.

        ``<name>.py`` is the file as written; ``<name>.resolved.py`` has the bases merged and
        the overrides applied. Classes defined in the config are written as ``<name>.Class``,
        which the verbatim copy beside it provides, so the resolved file runs again as is.
        """
        if self.cfg.filename and Path(self.cfg.filename).is_file():
            source = Path(self.cfg.filename)
            shutil.copyfile(source, self.path / source.name)
            self.cfg.dump(self.path / f"{source.stem}.resolved.py")
        else:
            self.cfg.dump(self.path / f"{self.timestamp}.py")

    @contextlib.contextmanager
    def logging_to_file(self, logger: logging.Logger, first_lines: Callable[[], str]) -> Iterator[None]:
        """The run's log file, open only while a loop runs (a notebook may make many runners).

        ``first_lines()`` is logged when the file is new (the hook order, as MMEngine does).
        """
        if not self.main:
            yield
            return
        first = not self.log_file.exists()
        handler = logging.FileHandler(self.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        if first:
            logger.info(first_lines())
        try:
            yield
        finally:
            logger.removeHandler(handler)
            try:
                handler.close()
            except OSError:
                pass  # a full disk: the error that ended the run says so, and must not be hidden


#: A fork's record of its parent, in its run folder: ``{"parent", "checkpoint", "forked_at"}``.
LINEAGE_FILE = "lineage.json"


def write_lineage(run_dir: Path, record: dict[str, Any]) -> None:
    """``lineage.json`` in a fork's run folder (``cockpit ls``, the dashboard and ``compare`` read it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LINEAGE_FILE).write_text(json.dumps(record, indent=2))


def read_lineage(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's lineage, or None: not a fork, or an unreadable file."""
    try:
        record = json.loads((Path(run_dir) / LINEAGE_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("checkpoint"), str) else None


class _HubLogHandler(logging.Handler):
    """Copies every log record into the hub, so views show the run's log."""

    def __init__(self, hub: MessageHub) -> None:
        super().__init__()
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        self.hub.log(record.levelname, record.getMessage(), record.created)


def make_logger(name: str, hub: MessageHub, level: str | int = "INFO", to_console: bool = True) -> logging.Logger:
    """A logger of this run alone, feeding the hub (and the console, if asked)."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(_HubLogHandler(hub))
    if to_console:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(asctime)s - %(message)s", "%m/%d %H:%M:%S"))
        logger.addHandler(console)
    return logger
