"""Scalar plots: plotext line charts, downsampled to a few points per column, redrawn on a timer."""

from __future__ import annotations

import bisect
import math

from textual_plotext import PlotextPlot

from cockpit.series import downsample, smooth
from cockpit.viewstate import RunState

#: Colors by series role; plotext color names.
COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red")


class ScalarPlot(PlotextPlot):
    """A line chart of some of the run's scalars against the training iteration.

    Args:
        keys: the scalars to draw (only those the run has are drawn).
        title: the chart's title.
        smoothed: also draw an exponential moving average of the first key.
    """

    DEFAULT_CSS = """
    ScalarPlot {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, keys: list[str], title: str, smoothed: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        self.title = title
        self.smoothed = smoothed
        self.log_scale = False
        self.recent: int | None = None  # draw only the last N iterations when set
        self.drawn_points = 0

    def draw(self, state: RunState) -> None:
        """Rebuild the chart from ``state`` (called a few times a second, never per event)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear" if self.app.no_color else "pro")
        width = max(10, self.size.width - 8)
        buckets = max(8, width)  # two points per column: the bucket's min and max
        drawn = 0
        last_step = max((s.steps[-1] for k in self.keys if (s := state.scalars.get(k)) and s.steps), default=0)
        start = last_step - self.recent if self.recent else -math.inf
        present = [key for key in self.keys if key in state.scalars and state.scalars[key].steps]
        for index, key in enumerate(present):
            series = state.scalars[key]
            steps, values, lows, highs = series.steps, series.values, series.mins, series.maxs
            if self.recent:
                first = bisect.bisect_left(steps, start)
                steps, values, lows, highs = steps[first:], values[first:], lows[first:], highs[first:]
            if self.log_scale:
                keep = [i for i, low in enumerate(lows) if low > 0]
                steps, values, lows, highs = ([column[i] for i in keep] for column in (steps, values, lows, highs))
            if not steps:
                continue
            color = COLORS[index % len(COLORS)]
            label = key
            if len(steps) <= 3 or key.startswith("val/"):
                # Sparse series (validation): markers, so single points show.
                x, y = steps, values
                plt.scatter(x, y, marker="●", color=color, label=label)
            else:
                raw_x, raw_y = (a.tolist() for a in downsample(steps, lows, highs, 2 * buckets))
                if self.smoothed and index == 0:
                    plt.plot(raw_x, raw_y, marker="braille", color="gray", label=f"{label} (raw)")
                    sx, sy = (a.tolist() for a in downsample(steps, smooth(values), max_points=2 * buckets))
                    plt.plot(sx, sy, marker="braille", color=color, label=f"{label} (smoothed)")
                    drawn += len(sx)
                else:
                    plt.plot(raw_x, raw_y, marker="braille", color=color, label=label)
                x = raw_x
            drawn += len(x)
        for marker in state.markers:
            if marker.get("step", 0) >= start:
                plt.vline(marker["step"], "red" if marker.get("kind") == "resume" else "yellow")
        if not present:
            plt.title(f"{self.title}: waiting for data")
        else:
            scope = f" · last {self.recent}" if self.recent else ""
            plt.title(f"{self.title}{scope}{' · log' if self.log_scale else ''}")
        plt.yscale("log" if self.log_scale else "linear")
        plt.xlabel("iter")
        self.drawn_points = drawn
        self.refresh()
