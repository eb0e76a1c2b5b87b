"""``HookTable``: the hook execution order, per stage, as MMEngine's ``get_hooks_info`` lists it.

One row per hook and stage, in the order they run, with the hook's priority,
how often it was called and its mean time per call. The stage that started last
(the live hook trace) is highlighted.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets

from cockpit.viewstate import RunState

_STYLE = """
<style>
.cockpit-hooks { border-collapse: collapse; width: 100%; font-size: 12px; line-height: 1.4; }
.cockpit-hooks th { position: sticky; top: 0; background: #f5f5f5; text-align: left; font-weight: 600;
                    padding: 4px 8px; border-bottom: 1px solid #ddd; white-space: nowrap; }
.cockpit-hooks td { padding: 1px 8px; white-space: nowrap; }
.cockpit-hooks .num { text-align: right; font-variant-numeric: tabular-nums; }
.cockpit-hooks tr.stage td { padding-top: 5px; color: #555; font-weight: 600; border-top: 1px solid #eee; }
.cockpit-hooks td.hook { padding-left: 22px; }
.cockpit-hooks tr.live td { background: #fff4d6; }
.cockpit-hooks tr.stage.live td { color: #8a5a00; }
.cockpit-hooks .priority { color: #888; }
</style>
"""


def format_seconds(seconds: float | None) -> str:
    """A short duration: ``850 µs``, ``12.3 ms``, ``1.25 s``; an en dash when unknown."""
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def hooks_html(state: RunState) -> str:
    """The hook table of ``state`` as an HTML table: a heading row per stage, then its hooks in order."""
    if not state.hooks:
        return "<div style='color:#888;font-size:12px'>No hooks registered yet.</div>"
    rows = []
    stage = None
    for row in state.hook_rows():
        live = " live" if row["running"] else ""
        if row["stage"] != stage:
            stage = row["stage"]
            rows.append(f"<tr class='stage{live}'><td colspan='4'>{'▶ ' if live else ''}{html.escape(stage)}</td></tr>")
        mean = row["mean_ms"] / 1000 if math.isfinite(row["mean_ms"]) else None
        rows.append(
            f"<tr class='{live.strip()}'><td class='hook'>{html.escape(row['hook'])}</td>"
            f"<td class='priority'>{html.escape(str(row['priority']))} ({row['priority_value']})</td>"
            f"<td class='num'>{row['calls']}</td>"
            f"<td class='num'>{format_seconds(mean)}</td></tr>"
        )
    header = "<tr><th>Stage / hook</th><th>Priority</th><th class='num'>Calls</th><th class='num'>Mean / call</th></tr>"
    return f"{_STYLE}<table class='cockpit-hooks'><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"


class HookTable(widgets.VBox):
    """The hook table in a scrolling box under a title."""

    def __init__(self, height: str = "300px") -> None:
        self.title = widgets.HTML("<b>Hooks</b> <span style='color:#888'>in execution order</span>")
        self.table = widgets.HTML(hooks_html(RunState()),
                                  layout=widgets.Layout(max_height=height, overflow="auto", width="100%"))
        super().__init__([self.title, self.table], layout=widgets.Layout(width="100%"))

    def show(self, state: RunState) -> None:
        text = hooks_html(state)
        if text != self.table.value:
            self.table.value = text
