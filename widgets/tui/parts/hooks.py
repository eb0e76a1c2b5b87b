"""The hook execution order as a live table, in ``hooks_info``'s shape.

A row per hook, in the order they run, grouped by stage: the stage is named on its first hook's
row (the one running now marked ``▶``), so the default hooks fit a 45-line terminal without
scrolling. Each row has the hook's priority, mean time per call and share of the training time.

The table is drawn line by line (Textual's line API) and keeps each row's line: a live run
changes a few timings at a time, and only those rows are drawn again. (A ``DataTable`` draws
every row again for one changed cell: that was most of what the table cost a view.)
"""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cockpit.viewstate import RunState

#: The table's columns: key and heading, in order. The live numbers come before the priority, and
#: columns are one space apart: at 160x45 the table's pane is 72 cells wide, and the 24-cell stage
#: names with two spaces either side of each cell pushed the share column out of sight.
COLUMNS = (("stage", "stage"), ("name", "hook"), ("mean", "ms/call"), ("share", "share"), ("priority", "priority"))
#: Spaces before each cell (and after the last).
PADDING = 1


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return ""
    return f"{value:.3f}" if value < 1 else f"{value:.1f}"


class HookTable(ScrollView, can_focus=True):
    """Per stage, the hooks in execution order; the running stage is marked and slow hooks stand out.

    The heading stays on the first line; the rows scroll under it when they do not fit.
    """

    COMPONENT_CLASSES = {"hook-table--header"}

    DEFAULT_CSS = """
    HookTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
        }
        & > .hook-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .hook-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._keys: tuple[str, ...] = ()  # each row's stage/hook, in order
        self._cells: list[tuple[Text, ...]] = []
        self._widths: tuple[int, ...] = tuple(cell_len(title) for _, title in COLUMNS)
        self._lines: dict[int, tuple[tuple, Strip]] = {}  # line number -> (what it shows, its strip)
        self.lines_drawn = 0  # lines turned into strips so far (a line that shows the same is kept)

    @property
    def row_count(self) -> int:
        """How many hook rows the table has (the heading aside)."""
        return len(self._cells)

    def show(self, state: RunState) -> None:
        """Bring the rows up to date with ``state``: only the rows whose cells changed are drawn again."""
        keys, cells = [], []
        previous = None
        for row in state.hook_rows():
            stage = Text()
            if row["stage"] != previous:
                previous = row["stage"]
                stage = Text(("▶ " if row["running"] else "  ") + row["stage"],
                             style="bold reverse" if row["running"] else "bold")
            share = row["share"]
            slow = math.isfinite(share) and share >= 10
            keys.append(f"{row['stage']}/{row['hook']}")
            cells.append((
                stage,
                Text(row["hook"], style="bold" if row["running"] else ""),
                Text(_ms(row["mean_ms"]), justify="right"),
                Text(f"{share:.1f}%" if math.isfinite(share) else "", justify="right",
                     style="bold red" if slow else ""),
                Text(row["priority"], style="dim"),
            ))
        widths = tuple(max([cell_len(title), *(row[i].cell_len for row in cells)])
                       for i, (_, title) in enumerate(COLUMNS))
        if tuple(keys) != self._keys or widths != self._widths:
            self._keys, self._cells, self._widths = tuple(keys), cells, widths
            self.virtual_size = Size(sum(widths) + PADDING * (len(widths) + 1), len(cells) + 1)
            self.refresh()
            return
        for index, (before, after) in enumerate(zip(self._cells, cells, strict=True)):
            if before != after:
                self._cells[index] = after
                self._refresh_row(index)

    def _refresh_row(self, index: int) -> None:
        """Repaint the line of row ``index``, if it is in view (the heading takes the first line)."""
        line = index + 1 - self.scroll_offset.y
        if 1 <= line < self.size.height:
            self.refresh(Region(0, line, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view: the heading, then the rows from the scroll position on."""
        width = self.size.width
        scroll_x = self.scroll_offset.x
        base = self.rich_style
        if y == 0:
            cells: tuple[Text, ...] = tuple(Text(title) for _, title in COLUMNS)
            style = base + self.get_component_rich_style("hook-table--header")
        else:
            index = self.scroll_offset.y + y - 1
            if index >= len(self._cells):
                return Strip.blank(width, base)
            cells, style = self._cells[index], base
        shown = (cells, self._widths, scroll_x, width, style)
        known = self._lines.get(y)
        if known is not None and known[0] == shown:
            return known[1]
        line = Text(end="", no_wrap=True)
        for cell, cell_width in zip(cells, self._widths, strict=True):
            gap = cell_width - cell.cell_len
            left = gap if cell.justify == "right" else 0
            line.append(" " * (PADDING + left))
            line.append_text(cell)
            line.append(" " * (gap - left))
        line.append(" " * PADDING)
        # The heading's colour runs under the columns only, as a DataTable's does; the rest is the table's.
        strip = Strip(list(line.render(self.app.console)), line.cell_len).apply_style(style)
        strip = strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, base)
        self._lines[y] = (shown, strip)
        self.lines_drawn += 1
        return strip
