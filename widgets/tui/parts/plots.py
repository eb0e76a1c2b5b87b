"""Scalar plots: plotext line charts, downsampled to a few points per column, redrawn on a timer.

What a reader needs, drawn so it reads at a glance:

- the scale follows the data: a log axis when the visible values span decades (``o`` turns that
  into a fixed choice), with ticks on round values (decades on a log axis, whole iterations on x);
- one frame per plot (the widget's border; plotext draws no box), whose title holds the legend,
  the current and the best value of each series, so nothing sits on the data;
- the raw line bright, its smoothed line (weight ``SMOOTHING``, cycled by ``m``) brighter still;
- the abandoned segments of a run resumed in place (its ``branches`` info) as dimmed lines;
- markers (a resume, a learning-rate change) as vertical lines in the colours ``MARKERS`` names.

What it costs a view watching a live run: the points go into fixed buckets of steps, the x axis
ends on a round step a little past the last point, and plotext's picture (the dearest part of a
frame) is built again only when a dot, a tick or a colour would change (``picture_key``); a new
title alone repaints the frame around the picture kept.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from typing import Any

import numpy as np
import plotext._utility as plotext_utility
from rich.ansi import AnsiDecoder
from rich.markup import escape
from rich.style import Style
from rich.text import Span, Text
from textual_plotext import PlotextPlot

from cockpit.series import RunningSmooth, downsample_by_step
from cockpit.viewstate import RunState

#: Colours by series; plotext color names (``orange`` is the terminal's yellow).
COLORS = ("cyan+", "orange+", "green+", "magenta+", "blue+", "red+")
#: The same colours as Textual's markup names them, for the legend in the title.
TITLE_COLORS = {"cyan+": "ansi_bright_cyan", "orange+": "ansi_bright_yellow", "green+": "ansi_bright_green",
                "magenta+": "ansi_bright_magenta", "blue+": "ansi_bright_blue", "red+": "ansi_bright_red"}
#: The raw line under a smoothed one, and an abandoned branch.
RAW_COLOR = "gray+"
BRANCH_COLOR = "gray"
#: Marker kind -> (plotext colour, the colour's name as the help says it).
MARKERS = {"resume": ("red+", "red"), "lr": ("orange+", "yellow")}
#: The smoothing weights ``m`` cycles through (0: the raw line only).
SMOOTHING = (0.0, 0.6, 0.9, 0.99)
#: A log axis is chosen when the largest visible value is at least this many times the smallest.
LOG_RATIO = 30.0


#: An SGR escape (the only kind plotext writes): its parameters.
SGR = re.compile(r"\x1b\[([0-9;]*)m")


@functools.lru_cache(maxsize=512)
def _sgr_style(escapes: str) -> Style | None:
    """The style Rich's own decoder gives text after ``escapes`` (the SGR escapes since the last reset)."""
    spans = AnsiDecoder().decode_line(escapes + "#").spans
    return spans[0].style if spans else None  # type: ignore[return-value]


def text_from_ansi(ansi: str) -> Text:
    """``Text.from_ansi`` for plotext's output (SGR escapes only), several times faster.

    Rich's decoder tokenises a picture character by character; plotext's pictures are runs of
    characters between a few colour escapes, so this splits on the escapes and looks each
    combination's style up once (from Rich's decoder: the same styles). A plot's picture is built
    about once a second; decoding it was nearly half of that.
    """
    pieces: list[str] = []
    spans: list[Span] = []
    position = 0
    escapes = ""  # the escapes in force since the last reset
    style: Style | None = None
    for number, line in enumerate(ansi.split("\n")):
        if number:
            pieces.append("\n")
            position += 1
        parts = SGR.split(line)
        for index, part in enumerate(parts):
            if index % 2:
                escapes = "" if part in ("", "0") else escapes + f"\x1b[{part}m"
                style = _sgr_style(escapes) if escapes else None
            elif part:
                pieces.append(part)
                if style is not None:
                    spans.append(Span(position, position + len(part), style))
                position += len(part)
    return Text("".join(pieces), spans=spans)


_plotext_hd_group = plotext_utility.hd_group


def hd_group(x: list, y: list, xf: list, yf: list) -> tuple[list, list, list]:
    """plotext's ``hd_group`` (which braille dots each character cell of a line sets), in one pass.

    plotext builds a zero matrix per point before it marks any; a loss plot's line has thousands
    of points a frame, and that was a third of building its picture. This returns the same (the
    cells in the order first met, each one's dots as plotext orders them: bottom row first), with a
    bit per dot, and hands anything but the plain case (markers of mixed sizes, a missing or
    non-numeric coordinate) to plotext's own.
    """
    width, height = max(xf, default=1), max(yf, default=1)
    if not x or min(xf) != width or min(yf) != height:
        return _plotext_hd_group(x, y, xf, yf)
    floor = math.floor
    cells: dict[tuple, int] = {}
    get = cells.get
    top = height - 1
    try:
        for column, row in zip(x, y, strict=True):
            if column != column or row != row:  # nan
                return _plotext_hd_group(x, y, xf, yf)
            key = (column // width, row // height)
            cells[key] = get(key, 0) | 1 << ((top - floor(row % height)) * width + floor(column % width))
    except TypeError:  # None, or text (dates): plotext's own
        return _plotext_hd_group(x, y, xf, yf)
    return [key[0] for key in cells], [key[1] for key in cells], [_dots(mask, width * height) for mask in cells.values()]


@functools.lru_cache(maxsize=1024)
def _dots(mask: int, count: int) -> tuple[int, ...]:
    """A cell's dots as ``hd_group`` returns them, from its bits."""
    return tuple((mask >> index) & 1 for index in range(count))


# plotext's build calls it through its module: the plots (every plotext figure in this process) use this one.
plotext_utility.hd_group = hd_group


def axis_end(first: float, last: float) -> float:
    """Where the x axis ends: the last step, rounded up to a round step of about a fortieth of the
    span. A growing run then rescales its plot every few percent of its length rather than with every
    point (a rescale moves every dot), and the line ends at most that much short of the right edge."""
    span = last - first
    if span <= 0:
        return last
    quantum = nice_step(span, 40)
    return first + math.ceil(span / quantum - 1e-9) * quantum


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into the number of parts
    nearest ``count``, and at least two."""
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    steps = [m * power for m in (0.5, 1, 2, 5, 10)]
    fitting = [step for step in steps if span / step >= 2] or steps[:1]
    return min(fitting, key=lambda step: abs(span / step - count))


def linear_ticks(low: float, high: float, count: int, whole: bool = False) -> list[float]:
    """Round ticks inside ``[low, high]``; ``whole`` keeps them on integers (iterations)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    step = nice_step(high - low, count)
    if whole:
        step = max(1.0, round(step))
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """The decades inside ``[low, high]``; with fewer than three, the 2s and 5s between them too."""
    if low <= 0 or high <= low:
        return [low] if low > 0 else []
    decades = [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    ticks = [d for d in decades if low <= d <= high]
    if len(ticks) < 3:
        ticks = sorted(d * m for d in decades for m in (1, 2, 5) if low <= d * m <= high)
    return ticks


def tick_label(value: float) -> str:
    """A short label: ``1e-3``, ``0.05``, ``1200``, ``20k``."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value / 1000:g}k"
    if magnitude < 1e-2:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.4g}"


def short_name(key: str) -> str:
    """``train/loss`` -> ``loss``, ``val/accuracy/top1`` -> ``val top1``: what a title has room for."""
    name = key.rsplit("/", 1)[-1]
    return f"val {name}" if key.startswith("val/") else name


def has_best(key: str) -> bool:
    """Whether a best value means something for ``key``: a loss or a metric, not a learning rate or a time."""
    name = key.rsplit("/", 1)[-1].lower()
    return name not in ("lr", "memory") and not name.endswith("time")


def value_text(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


#: Tick positions and their labels.
Ticks = tuple[list[float], list[str]]
#: Dots per character cell, across and down, of the markers drawn here (plotext's ``marker_factor``).
DOTS = {"braille": (2, 4)}


def _lim(values: np.ndarray) -> tuple[float, float]:
    """plotext's ``get_lim``: the data's limits, widened when they are one value."""
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low != high:
        return low, high
    return (0.5 * low, 1.5 * low) if low else (-1.0, 1.0)


def _cells(values: np.ndarray, lim: tuple[float, float], bins: int) -> np.ndarray:
    """plotext's ``get_matrix_data``: each value's cell (or dot) on a canvas of ``bins``."""
    low, high = lim
    return np.floor(np.round(0.5 + (bins - 1) * (values - low) / (high - low), 8)).astype(np.int64)


def picture_key(size: tuple, signals: list[tuple[str, str, list, list]], vlines: list[tuple[float, str]],
                xlim: tuple[float, float], xticks: Ticks | None, yticks: Ticks | None) -> tuple | None:
    """What plotext's picture of these signals is made of: the canvas, each signal's dots (its points'
    cells as plotext computes them, a point on the cell of the one before left out: it draws nothing
    more), each marker line's column, the ticks' places and labels. Two draws with equal keys give
    the same picture. None when that cannot be told (a missing value, an axis plotext lays out
    itself): the picture is built.

    Args:
        size: the widget's width, height, and anything else the picture depends on.
        signals: ``(marker, colour, x, y)`` as plotext gets them, in order.
        vlines: ``(x, colour)`` of each vertical line.
        xlim: the x axis' limits given to plotext.
        xticks, yticks: the ticks given to plotext.
    """
    if not signals:
        return (size,)
    if xticks is None or yticks is None:
        return None
    width, height = size[0], size[1]
    # The canvas: the widget less the y labels' column and the x labels' row (no frame, no axes).
    columns, rows = width - max(map(len, yticks[1]), default=0), height - 1
    xs = [np.asarray(x, dtype=np.float64) for _, _, x, _ in signals]
    ys = [np.asarray(y, dtype=np.float64) for _, _, _, y in signals]
    lines = np.asarray([step for step, _ in vlines], dtype=np.float64)
    every_x, every_y = np.concatenate([*xs, lines]), np.concatenate(ys)
    if columns <= 0 or rows <= 0 or not (np.isfinite(every_x).all() and np.isfinite(every_y).all()):
        return None
    ylim = _lim(every_y)
    xlim = _lim(np.asarray(xlim, dtype=np.float64))
    key: list[Any] = [size, columns, rows,
                      tuple(_cells(np.asarray(xticks[0], dtype=np.float64), xlim, columns)), tuple(xticks[1]),
                      tuple(_cells(np.asarray(yticks[0], dtype=np.float64), ylim, rows)), tuple(yticks[1]),
                      tuple(zip(_cells(lines, xlim, columns).tolist(), (c for _, c in vlines), strict=True))]
    for (marker, color, _, _), x, y in zip(signals, xs, ys, strict=True):
        across, down = DOTS.get(marker, (1, 1))
        cells = np.stack([_cells(x, xlim, columns * across), _cells(y, ylim, rows * down)])
        if cells.shape[1] > 1:
            cells = cells[:, np.concatenate([[True], (np.diff(cells, axis=1) != 0).any(axis=0)])]
        key.append((marker, color, cells.tobytes()))
    return tuple(key)


class ScalarPlot(PlotextPlot):
    """A line chart of some of the run's scalars against the training iteration.

    Args:
        keys: the scalars to draw (only those the run has are drawn).
        title: the chart's title.
        smoothing: the moving-average weight of the first key's smoothed line (0: none).
    """

    DEFAULT_CSS = """
    ScalarPlot {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, keys: list[str], title: str, smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        self.title = title
        self.smoothing = smoothing
        self.log_scale: bool | None = None  # None: chosen from the data (``log_now`` says which)
        self.log_now = False
        self.recent: int | None = None  # draw only the last N iterations when set
        self.drawn_points = 0
        self.drawn_branches = 0
        self._drawn = 0  # draws so far: a render of the same draw at the same size is the one made before
        self._rendered: tuple[tuple, Any] = ((), None)
        self._smoother = RunningSmooth()
        self._picture: tuple | None = None  # ``picture_key`` of the picture shown
        self._shown_title: str | None = None
        self._strips: tuple[tuple, Any] = ((), None)  # the picture's lines, as Textual paints them

    def next_smoothing(self) -> float:
        """Move to the next smoothing weight (after the last, back to none); returns it."""
        index = SMOOTHING.index(self.smoothing) if self.smoothing in SMOOTHING else -1
        self.smoothing = SMOOTHING[(index + 1) % len(SMOOTHING)]
        return self.smoothing

    def toggle_log(self) -> bool:
        """Fix the scale to the other one than shown now; returns whether it is log."""
        self.log_scale = not self.log_now
        return self.log_scale

    def draw(self, state: RunState) -> None:
        """Bring the chart up to date with ``state`` (at most a few times a second, never per event).

        The title is set every time; plotext's picture is built again only when it would differ
        from the one shown (``picture_key``): once a series is long, a new point often moves no
        dot of a fixed-width plot, and building the picture is the dearest part of a frame.
        """
        width = max(10, self.size.width - 8)
        buckets = 2 * max(8, width)  # two points per column: the bucket's min and max
        last_step = max((s.steps[-1] for k in self.keys if (s := state.scalars.get(k)) and s.steps), default=0)
        start = last_step - self.recent if self.recent else -math.inf
        present = [key for key in self.keys if key in state.scalars and state.scalars[key].steps]
        columns = {key: self._visible(state.scalars[key], start) for key in present}
        branches = self._branches(state, present, start)
        low = min((min(c[2]) for c in (*columns.values(), *branches) if c[0]), default=math.nan)
        high = max((max(c[3]) for c in (*columns.values(), *branches) if c[0]), default=math.nan)
        self.log_now = self.log_scale if self.log_scale is not None else bool(low > 0 and high >= LOG_RATIO * low)
        vlines = [(marker["step"], MARKERS.get(marker.get("kind"), MARKERS["lr"])[0]) for marker in state.markers
                  if marker.get("step", 0) >= start and present]
        # The x axis: from the first step drawn to the last, rounded up (``axis_end``), cut into fixed
        # buckets of steps (two points each, its low and its high): a new point changes the last bucket
        # alone, and the axis rescales in steps, so most new points move no dot once a series is long.
        ends = [step for c in (*columns.values(), *branches) if c[0] for step in (c[0][0], c[0][-1])]
        ends += [step for step, _ in vlines]
        first, last = (min(ends), max(ends)) if ends else (0, 0)
        xlim = (first, axis_end(first, last))
        bucket_width = (xlim[1] - xlim[0]) / (buckets // 2) or 1.0

        def thin(steps: list, lows: list, highs: list | None = None) -> tuple[list, list]:
            x, y = downsample_by_step(steps, lows, highs, origin=first, width=bucket_width, max_points=buckets)
            return x.tolist(), y.tolist()

        # What plotext is given, in drawing order: (marker, colour, x, y in the plot's own space).
        signals: list[tuple[str, str, list, list]] = []
        drawn = 0
        for steps, values, lows, highs in branches:
            steps, values, lows, highs = self._on_scale(steps, values, lows, highs)
            if steps:
                x, y = thin(steps, lows, highs)
                signals.append(("braille", BRANCH_COLOR, x, self._y(y)))
        self.drawn_branches = len(branches)
        for index, key in enumerate(present):
            steps, values, lows, highs = self._on_scale(*columns[key])
            if not steps:
                continue
            color = COLORS[index % len(COLORS)]
            if len(steps) <= 3 or key.startswith("val/"):
                signals.append(("●", color, list(steps), self._y(values)))  # sparse (validation): single points show
                drawn += len(steps)
                continue
            raw_x, raw_y = thin(steps, lows, highs)
            smoothed = self.smoothing > 0 and index == 0
            signals.append(("braille", RAW_COLOR if smoothed else color, raw_x, self._y(raw_y)))
            drawn += len(raw_x)
            if smoothed:
                sx, sy = thin(steps, self._smoothed(values))
                signals.append(("braille", color, sx, self._y(sy)))
                drawn += len(sx)
        xticks, yticks = self._axes(xlim if ends else None, low, high)
        title = self._title(state, present)
        if title != self._shown_title:  # a new title repaints the widget (its frame), not the picture
            self._shown_title = self.border_title = title
        self.drawn_points = drawn
        picture = picture_key((self.size.width, self.size.height, self.app.no_color), signals, vlines, xlim, xticks,
                              yticks)
        if picture is not None and picture == self._picture:
            return  # the same dots, ticks and colours: the picture shown stays
        self._picture = picture
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear" if self.app.no_color else "pro")
        plt.frame(False)
        for marker, color, x, y in signals:
            (plt.plot if marker == "braille" else plt.scatter)(x, y, marker=marker, color=color)
        for step, color in vlines:
            plt.vline(step, color)
        if xlim[1] > xlim[0]:  # else plotext widens a lone step's axis itself (as ``picture_key`` does)
            plt.xlim(*xlim)
        if yticks:
            plt.yticks(*yticks)
        if xticks:
            plt.xticks(*xticks)
        self._drawn += 1
        self.refresh()

    @property
    def pictures(self) -> int:
        """How many different pictures ``draw`` asked plotext for (a draw that changes no dot asks none)."""
        return self._drawn

    def _render_content(self) -> None:
        """Textual's ``Widget._render_content``, skipped when the picture's lines are those made
        before: a repaint for the frame's title alone (its value changes every draw), or for a
        neighbour's region, keeps the lines instead of turning the picture into them again."""
        key = (self._drawn, self.size, self.app.theme, self.visual_style)
        if self._strips[0] == key and self._render_cache.size == self.size:
            self._dirty_regions.clear()
            return
        super()._render_content()
        self._strips = (key, self._render_cache)

    def render(self) -> Any:
        """plotext's picture of the last draw; built once per draw and size (a repaint for anything
        else, as a dialog over the plot or a new title, does not build it again)."""
        key = (self._drawn, self.size, self.app.theme)
        if self._rendered[0] != key:
            # ``PlotextPlot.render`` with a faster decoding of plotext's picture (``text_from_ansi``).
            plot = self._plot
            plot.plotsize(self.size.width, self.size.height)
            plot._set_size(self.size.width, self.size.height)
            plot.theme(self._get_plotext_theme_name(self.app.theme))
            self._rendered = (key, text_from_ansi(plot.build()))
        return self._rendered[1]

    def _smoothed(self, values: list[float]) -> list[float]:
        """``smooth(values, self.smoothing)``, carried on from the last draw while the values only grew."""
        return self._smoother(values, self.smoothing)

    def _visible(self, series: Any, start: float) -> tuple[list, list, list, list]:
        steps, values, lows, highs = series.steps, series.values, series.mins, series.maxs
        if self.recent:
            first = bisect.bisect_left(steps, start)
            return steps[first:], values[first:], lows[first:], highs[first:]
        return steps, values, lows, highs

    def _y(self, values: list[float]) -> list[float]:
        """Values in the plot's own space: their logarithm on a log axis.

        The view takes the logarithm itself rather than asking plotext's log scale, which takes
        it again each time the same figure is rendered (a second render fails on negative values).
        """
        return [math.log10(value) for value in values] if self.log_now else values

    def _on_scale(self, steps: list, values: list, lows: list, highs: list) -> tuple[list, list, list, list]:
        """The points a log axis can show (positive ones); all of them on a linear axis."""
        if not self.log_now or (lows and min(lows) > 0):  # a loss is positive: nothing to leave out
            return steps, values, lows, highs
        keep = [i for i, low in enumerate(lows) if low > 0]
        return tuple([column[i] for i in keep] for column in (steps, values, lows, highs))  # type: ignore[return-value]

    def _branches(self, state: RunState, present: list[str], start: float) -> list[tuple[list, list, list, list]]:
        """The abandoned segments of the plotted keys (``info['branches']``), as drawable columns."""
        found = []
        for branch in state.info.get("branches") or ():
            scalars = branch.get("scalars") if isinstance(branch, dict) else None
            for key in present:
                data = (scalars or {}).get(key)
                if not isinstance(data, dict):
                    continue
                pairs = [(s, v) for s, v in zip(data.get("steps") or (), data.get("values") or (), strict=False)
                         if s >= start and isinstance(v, (int, float)) and math.isfinite(v)]
                if pairs:
                    steps, values = [p[0] for p in pairs], [float(p[1]) for p in pairs]
                    found.append((steps, values, values, values))
        return found

    def _axes(self, xlim: tuple[float, float] | None, low: float, high: float) -> tuple[Ticks | None, Ticks | None]:
        """The x and y ticks (positions in the plot's space, labels), on round values: decades (or
        1-2-5) on a log axis, round numbers on a linear one, whole iterations on x; None: plotext's own."""
        xticks = yticks = None
        if math.isfinite(low) and math.isfinite(high):
            rows = max(2, self.size.height // 3)
            ticks = log_ticks(low, high) if self.log_now else linear_ticks(low, high, rows)
            if ticks:
                yticks = (self._y(ticks), [tick_label(t) for t in ticks])
        if xlim is not None:
            ticks = linear_ticks(*xlim, max(2, self.size.width // 14), whole=True)
            xticks = (ticks, [tick_label(t) for t in ticks])
        return xticks, yticks

    def _title(self, state: RunState, present: list[str]) -> str:
        """The frame's title: per series its colour, name, last and best value, then the scale."""
        notes = (["log scale"] if self.log_now else []) + ([f"last {self.recent} iters"] if self.recent else [])
        if not present:
            return escape(f"{self.title}: waiting for data")
        parts = []
        for index, key in enumerate(present):
            color = TITLE_COLORS[COLORS[index % len(COLORS)]]
            name = short_name(key) if len(present) == 1 else key
            smoothed = f" (smoothed {self.smoothing:g})" if self.smoothing > 0 and index == 0 \
                and len(state.scalars[key].steps) > 3 and not key.startswith("val/") else ""
            text = f"[{color}]━[/] {escape(name)}{smoothed} {value_text(state.scalar(key))}"
            if has_best(key):
                text += f" · best {value_text(state.best(key))}"
            parts.append(text)
        return " · ".join(["  ".join(parts), *(escape(note) for note in notes)])
