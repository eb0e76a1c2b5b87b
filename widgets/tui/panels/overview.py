"""The run at a glance (W&B's run overview): its key settings, its folder and lineage, and every scalar's
last and best value.

The settings come from the run's ``config`` runtime info when it publishes one (``{"model",
"optimizer", "lr", "batch_size", "max_epochs", "max_iters", "by_epoch", "val_interval"}``, each
optional), and otherwise from what every run publishes (``max_epochs``, ``max_iters``, the
``train/lr`` scalar). "Best" follows the rule the run summary uses (``cockpit.views``): lower is
better for a loss or an error, higher for any other validation or test metric; a scalar with no
better (a learning rate, a time) shows its last value only.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from cockpit.widgets.tui.panels.system import bars
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from cockpit.series import Series
from cockpit.views import better_than, printable, progress_text, shown_path
from cockpit.viewstate import RunState

#: Below this width the two halves stack.
STACK_WIDTH = 110
#: Bars in a scalar's whole-run trend (the table's other columns take about 50: it fits 80 columns).
TREND_WIDTH = 24


def number(value: Any) -> str:
    """A value as the overview prints it: four significant digits, ``-`` for none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value in (None, "") else printable(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else "-"


def has_best(key: str) -> bool:
    """Whether ``key`` has a better direction: a loss-like key, or a validation or test metric."""
    name = key.rsplit("/", 1)[-1].lower()
    return "loss" in name or (key.startswith(("val/", "test/")) and not name.endswith("time"))


def best_point(key: str, series: Series) -> tuple[float, int] | None:
    """``(value, step)`` of ``key``'s best point (lowest or highest, by the run summary's rule), or None.

    A point folded from several iterations counts with its own lowest or highest value, so a best
    reached in the far past of a long run is still found.
    """
    if not has_best(key) or not series.steps:
        return None
    better = better_than(key)
    lower = better(0.0, 1.0)
    extremes = series.mins if lower else series.maxs
    best = None
    for index, value in enumerate(extremes):
        if math.isfinite(value) and (best is None or better(value, extremes[best])):
            best = index
    return None if best is None else (extremes[best], series.steps[best])


def scalar_rows(state: RunState) -> list[tuple[str, float, int | None, tuple[float, int] | None]]:
    """``(key, last value, last step, best)`` of every scalar: training first, then validation, test, others."""
    order = {"train": 0, "val": 1, "test": 2}
    keys = sorted(state.scalars, key=lambda k: (order.get(k.split("/", 1)[0], 3), k))
    rows = []
    for key in keys:
        series = state.scalars[key]
        rows.append((key, series.last, series.steps[-1] if series.steps else None, best_point(key, series)))
    return rows


def trend(series: Series, width: int) -> str:
    """The whole run of ``series`` in ``width`` bars (each the mean of its stretch), lowest to highest value."""
    values = [v for v in series.values if math.isfinite(v)]
    if len(values) < 2 or width < 1:
        return ""
    buckets = min(width, len(values))
    means = []
    for bucket in range(buckets):
        part = values[bucket * len(values) // buckets:(bucket + 1) * len(values) // buckets]
        means.append(sum(part) / len(part))
    low, high = min(means), max(means)
    return bars([m - low for m in means], buckets, high - low)[0] if high > low else "▄" * buckets


def _schedule(info: dict[str, Any], config: dict[str, Any]) -> str:
    """``10 epochs (1000 iters), val every 1 epoch``, or ``5000 iters, val every 500 iters``."""
    max_epochs = config.get("max_epochs", info.get("max_epochs"))
    max_iters = config.get("max_iters", info.get("max_iters"))
    by_epoch = config.get("by_epoch", info.get("by_epoch"))
    if not isinstance(by_epoch, bool):
        by_epoch = isinstance(max_epochs, int) and max_epochs > 1
    if by_epoch and max_epochs:
        text = f"{max_epochs} epochs" + (f" ({max_iters} iters)" if max_iters else "")
    elif max_iters:
        text = f"{max_iters} iters"
    else:
        text = "-"
    interval = config.get("val_interval")
    if isinstance(interval, int) and interval > 0:
        unit = "epoch" if by_epoch else "iter"
        text += f", val every {interval} {unit}{'s' if interval > 1 else ''}"
    return text


def _name(path: Any) -> str:
    return printable(Path(str(path)).name)


def _folder(path: Any, beside: Any) -> str:
    """A run folder as shown: its name alone when it sits beside ``beside`` (the same work dir), else its path."""
    path = Path(str(path))
    if beside and path.parent == Path(str(beside)).parent:
        return printable(path.name)
    return printable(shown_path(path))


def run_facts(state: RunState) -> list[tuple[str, str]]:
    """``(label, text)`` of what describes the run: where it stands, its settings, folder, lineage and best
    checkpoint. One line each, so that they fit above the scalars at 80x24."""
    info = state.info
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    name = printable(state.name or info.get("experiment_name") or "-")
    facts = [("run", name + (f" (seed {number(info['seed'])})" if "seed" in info else ""))]
    status = f"{state.status} · {progress_text(state)}"
    if isinstance(info.get("started"), (int, float)):
        status += " · since " + time.strftime("%Y-%m-%d %H:%M", time.localtime(info["started"]))
    facts.append(("status", status))
    folder = info.get("log_dir") or info.get("work_dir")
    if folder:
        facts.append(("folder", printable(shown_path(str(folder)))))
    if info.get("framework"):
        facts.append(("framework", printable(info["framework"])))
    facts.append(("model", number(config.get("model"))))
    optimizer = number(config.get("optimizer"))
    lr_now = state.scalar("train/lr")
    lr = f"lr {number(config['lr'])}" if isinstance(config.get("lr"), (int, float)) else ""
    if math.isfinite(lr_now) and (not lr or not math.isclose(lr_now, config["lr"], rel_tol=1e-6)):
        lr += (", " if lr else "") + f"now {number(lr_now)}"
    batch = f"batch {number(config['batch_size'])}" if config.get("batch_size") is not None else ""
    facts.append(("optimizer", " · ".join(part for part in (optimizer, lr, batch) if part and part != "-") or "-"))
    facts.append(("schedule", _schedule(info, config)))
    lineage = info.get("lineage")
    if isinstance(lineage, dict):
        fork = _folder(lineage.get("parent") or "-", folder)
        if isinstance(lineage.get("forked_at"), int):
            fork += f" at iter {lineage['forked_at']}"
        if lineage.get("checkpoint"):
            fork += f" ({_name(lineage['checkpoint'])})"
        facts.append(("forked from", fork))
    elif info.get("resumed_from"):
        facts.append(("resumed from", _name(info["resumed_from"])))
    if info.get("best_ckpt"):
        score = info.get("best_score")
        facts.append(("best ckpt", _name(info["best_ckpt"]) + (f" ({number(score)})" if score is not None else "")))
    return facts


class OverviewPanel(Horizontal):
    """The run's settings and lineage beside a table of every scalar's last and best value.

    Below ``STACK_WIDTH`` columns the two stack (settings on top). ``show(state)`` redraws only
    what changed.
    """

    DEFAULT_CSS = """
    OverviewPanel {
        height: 1fr;
    }
    OverviewPanel.-stacked {
        layout: vertical;
    }
    OverviewPanel.-stacked > #overview-facts, OverviewPanel.-stacked > #overview-scalars {
        width: 1fr;  /* one a row: the whole width (2fr/3fr share a row only side by side) */
    }
    OverviewPanel > #overview-facts {
        width: 2fr;
        height: auto;
        max-height: 50%;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    OverviewPanel.-wide > #overview-facts {
        max-height: 100%;
        height: 1fr;
    }
    OverviewPanel > #overview-scalars {
        width: 3fr;
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._facts: list[tuple[str, str]] | None = None
        self._rows: list | None = None
        self._table: DataTable | None = None  # once mounted

    def compose(self) -> ComposeResult:
        yield Static(id="overview-facts")
        yield DataTable(id="overview-scalars", cursor_type="none", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#overview-facts").border_title = "run"
        table = self._table = self.query_one("#overview-scalars", DataTable)
        table.border_title = "scalars: last and best"
        table.add_column("scalar", key="key")
        table.add_column(Text("last", justify="right"), key="last")
        table.add_column(Text("best", justify="right"), key="best")
        table.add_column(Text("at iter", justify="right"), key="at")
        table.add_column("whole run", key="trend")

    def on_resize(self) -> None:
        stacked = self.size.width < STACK_WIDTH
        self.set_class(stacked, "-stacked")
        self.set_class(not stacked, "-wide")

    def show(self, state: RunState) -> None:
        """Bring the panel up to date with ``state`` (a no-op when nothing it shows changed, or while hidden)."""
        if not self.is_on_screen or self._table is None or not self._table.is_attached:
            return  # hidden, not mounted yet, or the app is closing (children go before their parent)
        facts = run_facts(state)
        if facts != self._facts:
            self._facts = facts
            self.query_one("#overview-facts", Static).update(self._facts_table(facts))
        rows = scalar_rows(state)
        if rows != self._rows:
            self._rows = rows
            self._fill(rows, state)

    @staticmethod
    def _facts_table(facts: list[tuple[str, str]]) -> Table:
        table = Table.grid(padding=(0, 2))
        # The labels keep their width; a long value (a folder, a lineage) is the one cut short.
        table.add_column(style="dim", no_wrap=True, min_width=max((len(label) for label, _ in facts), default=0))
        table.add_column(no_wrap=True, overflow="ellipsis")
        for label, text in facts:
            table.add_row(label, Text(text, style="dim" if text == "-" else ""))
        return table

    def _fill(self, rows: list, state: RunState) -> None:
        table = self.query_one("#overview-scalars", DataTable)
        table.clear()
        for key, last, _, best in rows:
            at_best = best is not None and math.isfinite(last) and math.isclose(best[0], last)
            best_text = Text(number(best[0]) if best else "", justify="right",
                             style="bold green" if at_best else "green")
            table.add_row(key, Text(number(last), justify="right"), best_text,
                          Text(str(best[1]) if best else "", justify="right", style="dim"),
                          Text(trend(state.scalars[key], TREND_WIDTH), style="cyan"), key=key)
