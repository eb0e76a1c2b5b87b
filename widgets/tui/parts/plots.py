"""Scalar plots: plotext line charts, downsampled to a few points per column, redrawn on a timer.

What a reader needs, drawn so it reads at a glance:

- the scale follows the data: a log axis when the visible values span decades (``o`` turns that
  into a fixed choice), with ticks on round values (decades on a log axis, whole iterations on x);
- one frame per plot (the widget's border; plotext draws no box), whose title holds the legend,
  the current and the best value of each series, so nothing sits on the data;
- the raw line bright, its smoothed line (weight ``SMOOTHING``, cycled by ``m``) brighter still;
- the abandoned segments of a run resumed in place (its ``branches`` info) as dimmed lines;
- markers (a resume, a learning-rate change) as vertical lines in the colours ``MARKERS`` names.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from typing import Any

import plotext._utility as plotext_utility
from rich.ansi import AnsiDecoder
from rich.markup import escape
from rich.style import Style
from rich.text import Span, Text
from textual_plotext import PlotextPlot

from cockpit.series import downsample, smooth_on
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


def _same(a: float, b: float) -> bool:
    """Equal, or both nan."""
    return a == b or (a != a and b != b)


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
        self._smoothing_memo: tuple = ()  # (values, weight, length, last value, EMA state, smoothed)

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
        """Rebuild the chart from ``state`` (called a few times a second, never per event)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear" if self.app.no_color else "pro")
        plt.frame(False)
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
        drawn = 0
        for steps, values, lows, highs in branches:
            steps, values, lows, highs = self._on_scale(steps, values, lows, highs)
            if steps:
                x, y = (a.tolist() for a in downsample(steps, lows, highs, buckets))
                plt.plot(x, self._y(y), marker="braille", color=BRANCH_COLOR)
        self.drawn_branches = len(branches)
        for index, key in enumerate(present):
            steps, values, lows, highs = self._on_scale(*columns[key])
            if not steps:
                continue
            color = COLORS[index % len(COLORS)]
            if len(steps) <= 3 or key.startswith("val/"):
                plt.scatter(steps, self._y(values), marker="●", color=color)  # sparse (validation): single points show
                drawn += len(steps)
                continue
            raw_x, raw_y = (a.tolist() for a in downsample(steps, lows, highs, buckets))
            smoothed = self.smoothing > 0 and index == 0
            plt.plot(raw_x, self._y(raw_y), marker="braille", color=RAW_COLOR if smoothed else color)
            drawn += len(raw_x)
            if smoothed:
                sx, sy = (a.tolist() for a in downsample(steps, self._smoothed(values), max_points=buckets))
                plt.plot(sx, self._y(sy), marker="braille", color=color)
                drawn += len(sx)
        for marker in state.markers:
            if marker.get("step", 0) >= start and present:
                plt.vline(marker["step"], MARKERS.get(marker.get("kind"), MARKERS["lr"])[0])
        self._axes(columns, low, high)
        self.border_title = self._title(state, present)
        self.drawn_points = drawn
        self._drawn += 1
        self.refresh()

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
        """``smooth(values, self.smoothing)``, carried on from the last draw while the values only grew.

        The series is the run's list itself (up to 8192 points, folded in halves now and then): a
        draw a second smoothed all of it, the dearest part of drawing a long run's loss. The moving
        average's state (its value and how many values it took, for TensorBoard's debiasing) is
        kept, and only the new values go through it; a fold (fewer values) starts again.
        """
        weight = self.smoothing
        memo = self._smoothing_memo
        if not (memo and memo[0] is values and memo[1] == weight and 0 < memo[2] <= len(values)
                and _same(values[memo[2] - 1], memo[3])):
            smoothed, state = smooth_on(values, weight)
        else:
            _, _, known, _, state, smoothed = memo
            more, state = smooth_on(values[known:], weight, state)
            smoothed.extend(more)
        self._smoothing_memo = (values, weight, len(values), values[-1] if values else None, state, smoothed)
        return smoothed

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

    def _axes(self, columns: dict[str, tuple], low: float, high: float) -> None:
        """Ticks on round values: decades (or 1-2-5) on a log axis, round numbers on a linear one,
        whole iterations on x."""
        plt = self.plt
        if math.isfinite(low) and math.isfinite(high):
            rows = max(2, self.size.height // 3)
            ticks = log_ticks(low, high) if self.log_now else linear_ticks(low, high, rows)
            if ticks:
                plt.yticks(self._y(ticks), [tick_label(t) for t in ticks])
        first = min((c[0][0] for c in columns.values() if c[0]), default=None)
        last = max((c[0][-1] for c in columns.values() if c[0]), default=None)
        if first is not None and last is not None:
            ticks = linear_ticks(first, last, max(2, self.size.width // 14), whole=True)
            plt.xticks(ticks, [tick_label(t) for t in ticks])

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
