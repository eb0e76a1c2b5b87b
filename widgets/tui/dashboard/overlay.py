"""The overlay: one scalar of several runs in one plot, each run a colour, read from their scalar files."""

from __future__ import annotations

from pathlib import Path

from cockpit.widgets.tui.parts.plots import COLORS, linear_ticks, tick_label
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from cockpit.run_files import RunScalars
from cockpit.series import downsample

#: The scalar shown first, when the runs have it.
PREFERRED_KEYS = ("train/loss", "val/accuracy/top1")


def overlay_keys(runs: list[RunScalars]) -> list[str]:
    """The scalars any of ``runs`` has, the preferred first, then in name order."""
    present = sorted({key for run in runs for key in run.series})
    return [key for key in PREFERRED_KEYS if key in present] + [key for key in present if key not in PREFERRED_KEYS]


class OverlayPlot(PlotextPlot):
    """One scalar of several runs against the training iteration."""

    DEFAULT_CSS = """
    OverlayPlot {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.drawn: list[str] = []  # the labels drawn last, in order (for tests and the legend)

    def draw(self, key: str, runs: list[tuple[str, RunScalars]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear" if self.app.no_color else "pro")
        buckets = 2 * max(8, self.size.width - 8)
        self.drawn = []
        lows, highs, firsts, lasts = [], [], [], []
        for index, (label, scalars) in enumerate(runs):
            steps, values = scalars.series.get(key, ([], []))
            if not steps:
                continue
            finite = [v for v in values if v == v and abs(v) != float("inf")]
            if finite:
                lows.append(min(finite))
                highs.append(max(finite))
            firsts.append(steps[0])
            lasts.append(steps[-1])
            color = COLORS[index % len(COLORS)]
            if len(steps) <= 3 or key.startswith("val/"):
                plt.scatter(steps, values, marker="●", color=color, label=label)
            else:
                xs, ys = (a.tolist() for a in downsample(steps, values, max_points=buckets))
                plt.plot(xs, ys, marker="braille", color=color, label=label)
            self.drawn.append(label)
        # Ticks on round values, whole iterations on x, as the cockpit's own plots.
        if lows:
            ticks = linear_ticks(min(lows), max(highs), max(2, self.size.height // 3))
            if ticks:
                plt.yticks(ticks, [tick_label(t) for t in ticks])
        if firsts:
            ticks = linear_ticks(min(firsts), max(lasts), max(2, self.size.width // 14), whole=True)
            plt.xticks(ticks, [tick_label(t) for t in ticks])
        plt.title(key if self.drawn else f"{key}: no points yet")
        plt.xlabel("iter")
        self.refresh()


class OverlayScreen(Screen[None]):
    """Several runs' scalars overlaid; ``[``/``]`` change the scalar, Escape goes back to the runs.

    Args:
        folders: the runs to overlay.
        labels: each run's name in the legend (a fork says whose).
        read: returns a run's scalars, read up to now (called again on each refresh).
    """

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "back to the runs"),
        Binding("right_square_bracket,n", "key(1)", "next scalar"),
        Binding("left_square_bracket,p", "key(-1)", "previous scalar"),
    ]

    def __init__(self, folders: list[Path], labels: list[str], read, refresh_seconds: float = 1.0) -> None:
        super().__init__()
        self.folders = folders
        self.labels = labels
        self.read = read
        self.refresh_seconds = refresh_seconds
        self.keys: list[str] = []
        self.key = ""

    def compose(self) -> ComposeResult:
        yield Static(id="overlay-title")
        yield OverlayPlot(id="overlay-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(self.refresh_seconds, self.redraw)

    def redraw(self) -> None:
        runs = [self.read(folder) for folder in self.folders]
        self.keys = overlay_keys(runs)
        if self.key not in self.keys:
            self.key = self.keys[0] if self.keys else ""
        title = f"{len(self.folders)} runs · {self.key or 'no scalars yet'} · [ ] change the scalar · Esc back"
        self.query_one("#overlay-title", Static).update(title)
        self.query_one(OverlayPlot).draw(self.key, list(zip(self.labels, runs, strict=True)))

    def action_key(self, step: int) -> None:
        if self.keys:
            self.key = self.keys[(self.keys.index(self.key) + step) % len(self.keys)] if self.key in self.keys \
                else self.keys[0]
            self.redraw()
