"""Choosing which scalars the main plot shows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList


class _Checklist(SelectionList[str]):
    """A SelectionList whose enter applies the choice (space toggles): a plain one toggles on enter too,
    which left esc as the only way out."""

    BINDINGS = [Binding("enter", "screen.done", "show", show=False)]


class SeriesScreen(ModalScreen[list[str] | None]):
    """A checklist of the run's scalars; returns the chosen keys (enter), or None (escape)."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("enter", "done", "show")]

    DEFAULT_CSS = """
    SeriesScreen {
        align: center middle;
    }
    SeriesScreen > Vertical {
        width: 60;
        max-width: 95%;
        height: auto;
        max-height: 80%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    SeriesScreen Label {
        width: 100%;
    }
    SeriesScreen SelectionList {
        height: auto;
        max-height: 20;
    }
    """

    def __init__(self, keys: list[str], chosen: list[str]) -> None:
        super().__init__()
        self.keys = keys
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Series in the main plot (space toggles, enter shows, esc cancels)")
            yield _Checklist(*((key, key, key in self.chosen) for key in self.keys))

    def action_done(self) -> None:
        self.dismiss(list(self.query_one(SelectionList).selected))

    def action_cancel(self) -> None:
        self.dismiss(None)
