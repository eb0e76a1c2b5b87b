"""``compare(runs)``: several runs' scalars overlaid in one plotly ``FigureWidget``.

Each run is read from its folder (``vis_data/scalars.json``, ``lineage.json``), so finished
runs, live ones (up to what they have written) and forks compare alike. One panel per scalar,
stacked on a shared iteration axis; each run keeps one colour in every panel, and a fork's name
says whose fork it is and where it branched off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cockpit.run_files import RunScalars, read_lineage, read_scalars, run_label
from cockpit.series import downsample
from cockpit.views import RUN_FILE, read_runs

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


def compare(runs: Iterable[str | os.PathLike], keys: Sequence[str] | None = None) -> go.FigureWidget:
    """Overlay the scalars of ``runs`` (run folders, or folders of runs), one panel per key.

    Args:
        runs: run folders, or folders holding runs (every run under them).
        keys: the scalars to show, as the hub names them (``train/loss``, ``val/accuracy/top1``);
            default: the training loss and the first validation metric.

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
                steps, values = run.series.get(key, ([], []))
                xs, ys = downsample(steps, values, max_points=MAX_POINTS)
                sparse = key.startswith("val/") or len(steps) <= 3
                figure.add_scatter(x=xs.tolist(), y=ys.tolist(), name=label, legendgroup=label,
                                   showlegend=row == 1, mode="lines+markers" if sparse else "lines",
                                   line={"color": color, "width": 1.5}, row=row, col=1)
        figure.update_layout(height=260 * max(1, len(keys)) + 80, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                             legend={"orientation": "h", "y": -0.12}, template="plotly_white")
        figure.update_xaxes(title_text="iteration", row=max(1, len(keys)), col=1)
    return figure


__all__ = ["compare", "default_keys", "run_folders"]
