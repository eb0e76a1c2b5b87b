"""What the dashboard shows of each run, read from the run folders (no Textual here).

``RunsModel.scan`` lists every run under a folder from its ``run.json`` (status, progress, last
checkpoint; a live run's server keeps it current, and a dead process is told as such) and its
``lineage.json``. ``RunsModel.read_metrics`` adds each run's best validation metric from its
scalar file, reading only what was appended since the last call, so a refresh of a hundred runs
stays cheap. The first frame needs only ``scan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.run_files import RunScalars, best_metric, read_lineage, read_scalars, run_label
from cockpit.views import RunRecord, epoch_based, read_runs


@dataclass
class RunRow:
    """One run as a row of the dashboard."""

    record: RunRecord
    lineage: dict[str, Any] | None = None
    best: tuple[str, float] | None = None

    @property
    def folder(self) -> Path:
        return self.record.folder

    @property
    def label(self) -> str:
        return run_label(self.folder, self.lineage or {})

    @property
    def fraction(self) -> float | None:
        """How far the run is, from 0 to 1 (None when its length is unknown)."""
        run = self.record
        if run.max_iters:
            return min(1.0, (run.iter or 0) / run.max_iters)
        return None

    def cells(self, selected: bool, root: Path) -> tuple[str, ...]:
        """The row's cells: mark, run, status, progress, best metric, last checkpoint, parent."""
        run = self.record
        if run.problem:
            return ("", run.name, "unreadable", "-", "-", "-", run.problem[:40])
        status = run.status + (" ●" if run.live else "")
        fraction = self.fraction
        progress = f"{run.iter or 0}/{run.max_iters or '?'}"
        if epoch_based(run):
            progress += f" ep {run.epoch or 0}/{run.max_epochs or '?'}"
        if fraction is not None:
            progress = f"{_bar(fraction)} {progress}"
        best = "-"
        if self.best is not None:
            key, value = self.best
            best = f"{key.removeprefix('val/')} {value:.4g}" if math.isfinite(value) else "-"
        last = Path(run.last_checkpoint).name if run.last_checkpoint else "-"
        parent = "-"
        if self.lineage:
            source = Path(self.lineage["parent"]) if self.lineage.get("parent") else Path(self.lineage["checkpoint"])
            parent = f"{_relative(source, root)} @ {self.lineage.get('forked_at', '?')}"
        return ("✓" if selected else "", _relative(self.folder, root), status, progress, best, last, parent)


COLUMNS = ("", "RUN", "STATUS", "PROGRESS", "BEST", "LAST CHECKPOINT", "FORKED FROM")
#: The columns that hold run names (the ones shortened to fit the terminal).
NAME_COLUMNS = (1, 6)
#: A run name is never cut shorter than this.
MIN_NAME_WIDTH = 16


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle: a run's folder (its timestamp, at the
    end) and the start of its config's name stay, which tell runs apart."""
    if len(text) <= width:
        return text
    head = max(1, (width - 1) // 2)
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def fit_names(rows: list[tuple[str, ...]], width: int, padding: int = 2) -> list[tuple[str, ...]]:
    """``rows`` of cells with the run names shortened so the table fits ``width`` columns.

    The other columns keep their width. The room left goes to the run's own name first, then to
    the parent's (a fork's own name already says ``-fork-``); neither is cut below
    ``MIN_NAME_WIDTH``, so a very narrow terminal scrolls instead of showing stubs.
    """
    if not rows:
        return rows
    widths = [max(len(header), *(len(row[index]) for row in rows)) for index, header in enumerate(COLUMNS)]
    fixed = sum(widths[index] + padding for index in range(len(COLUMNS)) if index not in NAME_COLUMNS)
    room = width - fixed - padding * len(NAME_COLUMNS) - 1  # the table's scrollbar gutter
    if sum(widths[index] for index in NAME_COLUMNS) <= room:
        return rows
    run, parent = NAME_COLUMNS
    limit = {parent: min(widths[parent], MIN_NAME_WIDTH)}
    limit[run] = min(widths[run], max(MIN_NAME_WIDTH, room - limit[parent]))
    limit[parent] = min(widths[parent], max(limit[parent], room - limit[run]))
    return [tuple(shorten(cell, limit[index]) if index in limit else cell for index, cell in enumerate(row))
            for row in rows]


def _bar(fraction: float, width: int = 10) -> str:
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class RunsModel:
    """The runs under ``root``, refreshed on demand.

    Args:
        root: the folder of runs (``work_dirs``); runs are found up to three folders down.
    """

    root: Path
    rows: list[RunRow] = field(default_factory=list)
    _scalars: dict[Path, RunScalars] = field(default_factory=dict)

    def scan(self) -> list[RunRow]:
        """Read every ``run.json`` and ``lineage.json`` again; best metrics are kept.

        Rows are in folder order (a work dir's runs together, oldest first, a fork's work dir beside
        its parent's), which does not move as live runs update their files.
        """
        best = {row.folder: row.best for row in self.rows}
        records = sorted((record for record in read_runs(self.root) if record.folder.is_dir()),
                         key=lambda record: record.folder.parts)
        self.rows = [RunRow(record, read_lineage(record.folder), best.get(record.folder)) for record in records]
        return self.rows

    def read_metrics(self) -> None:
        """Bring each run's best metric up to its scalar file (only the lines added since the last read)."""
        for row in list(self.rows):
            scalars = self._scalars[row.folder] = read_scalars(row.folder, self._scalars.get(row.folder))
            row.best = best_metric(scalars)

    def scalars(self, folder: Path) -> RunScalars:
        """A run's scalars, read up to now."""
        scalars = self._scalars[folder] = read_scalars(folder, self._scalars.get(folder))
        return scalars

    def row(self, folder: Path) -> RunRow | None:
        return next((row for row in self.rows if row.folder == folder), None)

    def family(self, folder: Path) -> list[Path]:
        """``folder`` and, for a fork, its parent; for a parent, its forks (what to compare by default)."""
        row = self.row(folder)
        if row is None:
            return [folder]
        if row.lineage and row.lineage.get("parent"):
            parent = Path(row.lineage["parent"])
            return [parent, folder] if self.row(parent) is not None else [folder]
        forks = [other.folder for other in self.rows
                 if other.lineage and other.lineage.get("parent") and Path(other.lineage["parent"]) == folder]
        return [folder, *forks]
