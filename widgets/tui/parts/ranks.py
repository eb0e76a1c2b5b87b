"""The rank strip: one line that says how each rank of a distributed run is doing.

``ranks 0 ● 0.12s · 1 ▲ straggles 2.6x · 2 ✖ hung 63s in SlowRank.after_train_iter (cfg.py:12)``

A healthy rank shows its step time, a straggler (the run's verdict: its own time over 1.3x the
median rank's by default) how much slower it is, in yellow, and a hung rank (it holds the others
up in a collective) how long it has made no progress, in red, with where its training thread is
when the line has room. When the ranks do not fit, the healthy ones are merged (``0-5,7 ● 0.12s``):
a flagged rank is never left out. Shown only in a distributed run (more than one rank).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from cockpit.viewstate import RankHealth, RunState, short_seconds

#: Per state: the mark before the rank and the style of its words.
MARKS = {"ok": ("●", "green"), "straggler": ("▲", "bold yellow"), "alert": ("⚠", "bold red"),
         "hung": ("✖", "bold red")}
SEPARATOR = " · "
#: The least room worth giving a hung rank's ``where`` (else it is left out).
MIN_WHERE = 12


def rank_ranges(ranks: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2,5,7-8``."""
    parts: list[str] = []
    ordered = sorted(ranks)
    start = previous = None
    for rank in [*ordered, None]:
        if rank is not None and previous is not None and rank == previous + 1:
            previous = rank
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = rank
    return ",".join(parts)


def _items(ranks: Sequence[RankHealth], level: int) -> list[tuple[str, str, str]]:
    """``(label, state, words)`` per shown item. Level 0: every rank; 1: the healthy ranks merged into one
    item with their median step; 2: the flagged ranks alone (each rank if none is flagged)."""
    healthy = [r for r in ranks if r.state == "ok"]
    if level >= 2 and len(healthy) < len(ranks):
        return [(str(r.rank), r.state, r.note) for r in ranks if r.state != "ok"]
    items = []
    merged = False
    for rank in ranks:
        if rank.state != "ok" or level == 0 or len(healthy) < 2:
            items.append((str(rank.rank), rank.state, rank.note))
        elif not merged:
            merged = True
            steps = [r.step_time for r in healthy if math.isfinite(r.step_time)]
            items.append((rank_ranges([r.rank for r in healthy]), "ok",
                          short_seconds(statistics.median(steps)) if steps else "?"))
    return items


def _length(items: list[tuple[str, str, str]]) -> int:
    return (len("ranks ") + sum(len(f"{label} {MARKS[state][0]} {words}") for label, state, words in items)
            + len(SEPARATOR) * (len(items) - 1))


def strip_text(ranks: Sequence[RankHealth], width: int) -> Text:
    """The strip for ``ranks`` in ``width`` columns: the fullest form that fits (``…`` if none does)."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    if not ranks:
        return text
    items = _items(ranks, 0)
    for level in (1, 2):
        if _length(items) <= width:
            break
        items = _items(ranks, level)
    text.append("ranks ", style="dim")
    for index, (label, state, words) in enumerate(items):
        if index:
            text.append(SEPARATOR, style="dim")
        mark, style = MARKS[state]
        text.append(f"{label} ")
        text.append(mark, style=style)
        text.append(f" {words}", style=style if state != "ok" else "")  # a healthy rank: only its dot is green
    hung = next((r for r in ranks if r.state == "hung" and r.where), None)
    if hung is not None:
        last = items[-1][0] == str(hung.rank)
        lead = " in " if last else f"  {MARKS['hung'][0]} {hung.rank} in "
        room = width - len(text) - len(lead)
        if room >= MIN_WHERE:
            where = hung.where if len(hung.where) <= room else hung.where[:room - 1] + "…"
            text.append(lead, style="dim")
            text.append(where, style="red")
    text.truncate(width, overflow="ellipsis")
    return text


class RankStrip(Static):
    """The rank strip; hidden unless the run has more than one rank."""

    DEFAULT_CSS = """
    RankStrip {
        height: 1;
        background: $panel;
        padding: 0 1;
        display: none;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple = ()

    def show(self, state: RunState) -> None:
        """Bring the strip up to date (asked every frame: it changes the screen only when its text does)."""
        ranks = state.rank_health
        if self.display != bool(ranks):
            self.display = bool(ranks)  # a line more or less: the screen is laid out again, once
        if not ranks:
            return
        width = self.size.width - 2 if self.size.width else 1 << 16
        shown = (ranks, width)
        if shown == self._shown:
            return
        self._shown = shown
        self.update(strip_text(ranks, width), layout=False)
