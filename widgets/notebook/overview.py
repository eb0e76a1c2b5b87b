"""``Overview``: the run at a glance — its key settings, its folder, where it came from, and the
last and best value of every scalar it logs (W&B's run page, in the notebook's idiom)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from cockpit.views import better_than  # the one rule for "best" (lower for losses and errors)
from cockpit.viewstate import RunState


def _type_name(spec: Any) -> str:
    """``ToyNet`` for ``dict(type=ToyNet)``, ``'SGD'`` or ``'torch.optim.SGD'``."""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).rsplit(".", 1)[-1] if kind else ""


def config_facts(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The settings a person checks first: model, optimizer and lr, batch size, schedule."""
    if not config:
        return []
    facts = []
    if model := _type_name(config.get("model")):
        facts.append(("model", model))
    wrapper = config.get("optim_wrapper") or {}
    optimizer = wrapper.get("optimizer") if isinstance(wrapper, Mapping) else None
    if optimizer is None:
        optimizer = config.get("optimizer")
    if isinstance(optimizer, Mapping):
        facts.append(("optimizer", _type_name(optimizer)))
        if "lr" in optimizer:
            facts.append(("lr", f"{optimizer['lr']:g}" if isinstance(optimizer["lr"], (int, float)) else str(optimizer["lr"])))
    loader = config.get("train_dataloader")
    if isinstance(loader, Mapping) and "batch_size" in loader:
        facts.append(("batch size", str(loader["batch_size"])))
    train = config.get("train_cfg")
    if isinstance(train, Mapping):
        length = (f"{train['max_epochs']} epochs" if "max_epochs" in train
                  else f"{train['max_iters']} iterations" if "max_iters" in train else "")
        if length:
            facts.append(("length", length))
    schedulers = config.get("param_scheduler")
    if isinstance(schedulers, Mapping):
        schedulers = [schedulers]
    if isinstance(schedulers, (list, tuple)):
        names = [_type_name(s) for s in schedulers if isinstance(s, Mapping)]
        if names:
            facts.append(("schedule", " → ".join(names)))
    return facts


def scalar_summary(state: RunState) -> list[tuple[str, float, float]]:
    """``(key, last, best)`` for every scalar, in key order.

    Best is the lowest for losses, errors and timings, the highest otherwise, and NaN (shown
    as "–") for a learning rate, which has no better value.
    """
    rows = []
    for key in sorted(state.scalars):
        series = state.scalars[key]
        name = key.rsplit("/", 1)[-1]
        if name.endswith("lr"):
            if any(math.isfinite(v) for v in series.values):
                rows.append((key, series.last, math.nan))
            continue
        # Once per redraw, for every scalar: in numpy (a long run keeps 8192 points a scalar).
        values = np.asarray(series.values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        lower = name.endswith("time") or better_than(key)(0.0, 1.0)
        rows.append((key, series.last, float(values.min() if lower else values.max())))
    return rows


def _grid(columns: int, cells: list[str], head: list[str] = ()) -> str:
    """Cells in a compact CSS grid (a notebook's table styles would space the rows out)."""
    header = "".join(f"<span style='color:#555;font-weight:600'>{html.escape(h)}</span>" for h in head)
    return (f"<div style='display:grid;grid-template-columns:repeat({columns},auto);gap:1px 14px;"
            f"font-size:12px;line-height:18px;justify-content:start'>{header}{''.join(cells)}</div>")


def _cell(text: str, kind: str = "") -> str:
    style = {"key": "color:#777", "number": "text-align:right;font-variant-numeric:tabular-nums"}.get(kind, "")
    return f"<span style='{style}'>{text}</span>"


def published_facts(config: Any) -> list[tuple[str, str]]:
    """The settings a run publishes (its info ``config``: model, optimizer, lr, batch size, length),
    for a view without the config file (``Cockpit.attach``)."""
    if not isinstance(config, Mapping):
        return []
    length = (f"{config['max_epochs']} epochs" if config.get("by_epoch") and config.get("max_epochs")
              else f"{config['max_iters']} iterations" if config.get("max_iters") else "")
    facts = [("model", config.get("model")), ("optimizer", config.get("optimizer")),
             ("lr", f"{config['lr']:g}" if isinstance(config.get("lr"), (int, float)) else None),
             ("batch size", config.get("batch_size")), ("length", length)]
    return [(name, str(value)) for name, value in facts if value not in (None, "")]


def overview_html(state: RunState, facts: list[tuple[str, str]]) -> str:
    """The overview as HTML: settings and folder on the left, every scalar's last and best on the right.

    ``facts`` come from the config in this kernel; without them, from what the run publishes."""
    info = state.info
    facts = facts or published_facts(info.get("config"))
    cells = [cell for name, value in facts for cell in (_cell(html.escape(name), "key"), _cell(html.escape(value)))]
    folder = info.get("log_dir") or info.get("work_dir")
    if folder:
        cells += [_cell("run folder", "key"), _cell(f"<code>{html.escape(str(folder))}</code>")]
    lineage = info.get("lineage")
    if isinstance(lineage, Mapping) and lineage.get("parent"):
        start = Path(str(lineage.get("checkpoint", ""))).name
        cells += [_cell("branched from", "key"),
                  _cell(f"<code>{html.escape(str(lineage['parent']))}</code>{' at ' + html.escape(start) if start else ''}")]
    settings = _grid(2, cells) if cells else "<span style='color:#888;font-size:12px'>no settings known</span>"
    rows = [cell for key, last, best in scalar_summary(state)
            for cell in (_cell(html.escape(key)), _cell(f"{last:.4g}", "number"),
                         _cell(f"{best:.4g}" if math.isfinite(best) else "–", "number"))]
    scalars = (_grid(3, rows, ["scalar", "last", "best"]) if rows
               else "<span style='color:#888;font-size:12px'>no scalars yet</span>")
    return f"<div style='display:flex;gap:48px;flex-wrap:wrap'><div>{settings}</div><div>{scalars}</div></div>"


class Overview(widgets.Accordion):
    """A folding "Overview" section, redrawn from the state (the settings are given once).

    Args:
        facts: ``config_facts`` of the run's config (empty when the view has no config).
    """

    def __init__(self, facts: list[tuple[str, str]] | None = None) -> None:
        self.facts = list(facts or [])
        self.body = widgets.HTML(overview_html(RunState(), self.facts))
        super().__init__([self.body], titles=("Overview",), selected_index=0,
                         layout=widgets.Layout(width="100%"))

    def show(self, state: RunState) -> None:
        self.body.value = overview_html(state, self.facts)
