"""``compare(runs)``: several runs' scalars overlaid in one plotly ``FigureWidget``.

Each run is read from its folder (``vis_data/scalars.json``, ``lineage.json``), so finished
runs, live ones and forks compare alike; a live run's curves grow as it writes its log lines
(a background thread reads what was appended, until no run is live). One panel per scalar,
stacked on a shared iteration axis; each run keeps one colour in every panel, and a fork's name
says whose fork it is and where it branched off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cockpit.events import is_ended
from cockpit.run_files import RunScalars, read_lineage, read_scalars, run_label
from cockpit.series import downsample
from cockpit.views import RUN_FILE, read_run, read_runs

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
#: The most points sent for one run's scalar (every bucket's lowest and highest kept).
MAX_POINTS = 2000


def run_folders(runs: Iterable[str | os.PathLike]) -> list[Path]:
    """Each entry as run folders: a run folder itself, or every run under a folder of runs (oldest first).

    Raises:
        ValueError: an entry that is no folder, or holds no run.
    """
    folders: list[Path] = []
    for entry in runs:
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise ValueError(f"compare: {entry} is not a folder; give run folders (work_dirs/<config>/<timestamp>) "
                             "or folders of runs")
        if (path / RUN_FILE).is_file() or (path / "vis_data").is_dir():
            folders.append(path)
            continue
        found = sorted((run.folder for run in read_runs(path) if not run.problem), key=lambda folder: folder.parts)
        if not found:
            raise ValueError(f"compare: no run under {entry} (a run folder holds run.json and vis_data/)")
        folders += found
    return list(dict.fromkeys(folders))


def default_keys(runs: Sequence[RunScalars]) -> list[str]:
    """``train/loss`` and the first validation metric, those the runs have."""
    present = {key for run in runs for key in run.series}
    keys = [key for key in ("train/loss",) if key in present]
    metrics = sorted(key for key in present if key.startswith("val/") and key.rsplit("/", 1)[-1] not in
                     ("time", "data_time"))
    return keys + metrics[:1] or sorted(present)[:1]


def compare(runs: Iterable[str | os.PathLike], keys: Sequence[str] | None = None,
            refresh_seconds: float | None = 2.0) -> go.FigureWidget:
    """Overlay the scalars of ``runs`` (run folders, or folders of runs), one panel per key.

    Args:
        runs: run folders, or folders holding runs (every run under them).
        keys: the scalars to show, as the hub names them (``train/loss``, ``val/accuracy/top1``);
            default: the training loss and the first validation metric.
        refresh_seconds: while any of the runs is live, a background thread reads what they append
            to their scalar files this often and extends their curves; it stops once none is live
            (or the figure is closed). None: a still picture.

    Returns:
        A ``FigureWidget``: display it in a notebook cell.

    Raises:
        ValueError: a run that cannot be found, or no runs at all.
    """
    folders = run_folders(runs)
    if not folders:
        raise ValueError("compare: give at least one run folder")
    scalars = [read_scalars(folder) for folder in folders]
    keys = list(keys) if keys is not None else default_keys(scalars)
    figure = go.FigureWidget(make_subplots(rows=max(1, len(keys)), cols=1, shared_xaxes=True,
                                           subplot_titles=keys or ["no scalars yet"], vertical_spacing=0.08))
    with figure.batch_update():
        for index, (folder, run) in enumerate(zip(folders, scalars, strict=True)):
            label = run_label(folder, read_lineage(folder) or {})
            color = COLORS[index % len(COLORS)]
            for row, key in enumerate(keys, start=1):
                xs, ys = _points(run, key)
                figure.add_scatter(x=xs, y=ys, name=label, legendgroup=label,
                                   showlegend=row == 1, mode=_mode(key, len(xs)),
                                   line={"color": color, "width": 1.5}, row=row, col=1)
        figure.update_layout(height=260 * max(1, len(keys)) + 80, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                             legend={"orientation": "h", "y": -0.12}, template="plotly_white")
        figure.update_xaxes(title_text="iteration", row=max(1, len(keys)), col=1)
    live = [index for index, folder in enumerate(folders) if is_live(folder)]
    if refresh_seconds is not None and live and keys:
        follower = Follower(figure, folders, scalars, keys, live, refresh_seconds)
        figure._cockpit_follower = follower  # the figure keeps its follower (``figure._cockpit_follower.stop()``)
        follower.start()
    return figure


def _points(run: RunScalars, key: str) -> tuple[list, list]:
    steps, values = run.series.get(key, ([], []))
    xs, ys = downsample(steps, values, max_points=MAX_POINTS)
    return xs.tolist(), ys.tolist()


def _mode(key: str, count: int) -> str:
    return "lines+markers" if key.startswith("val/") or count <= 3 else "lines"


def is_live(folder: Path) -> bool:
    """Whether the run in ``folder`` is training now (its process is alive and has not recorded an end)."""
    run = read_run(folder / RUN_FILE)
    return run.live and not is_ended(run.status)


class Follower(threading.Thread):
    """Extends the curves of the live runs of a ``compare`` figure as their scalar files grow.

    Each pass reads only what was appended (``read_scalars`` with the previous read) and touches
    only the traces of runs that got lines. A run that ended gets one last read; the thread ends
    when no run is live, or the figure was closed (its comm is gone).
    """

    def __init__(self, figure: go.FigureWidget, folders: list[Path], scalars: list[RunScalars], keys: list[str],
                 live: list[int], interval: float) -> None:
        super().__init__(name="cockpit-compare", daemon=True)
        self.figure, self.folders, self.scalars, self.keys = figure, folders, scalars, keys
        self.live, self.interval = list(live), interval
        self._stop_event = threading.Event()
        self.passes = 0  # reads done (for tests and curious users)

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while self.live and not self._stop_event.wait(self.interval):
            if getattr(self.figure, "comm", None) is None:
                return  # figure.close(): nobody sees it any more
            still = [index for index in self.live if is_live(self.folders[index])]
            self._extend(self.live)  # the ended ones too: their last lines
            self.live = still
            self.passes += 1

    def _extend(self, runs: list[int]) -> None:
        grown = []
        for index in runs:
            size = self.scalars[index].size
            self.scalars[index] = read_scalars(self.folders[index], self.scalars[index])
            if self.scalars[index].size != size:
                grown.append(index)
        if not grown:
            return
        per_run = len(self.keys)
        with self.figure.batch_update():
            for index in grown:
                for offset, key in enumerate(self.keys):
                    trace = self.figure.data[index * per_run + offset]
                    xs, ys = _points(self.scalars[index], key)
                    trace.x, trace.y, trace.mode = xs, ys, _mode(key, len(xs))


__all__ = ["Follower", "compare", "default_keys", "run_folders"]
