"""The help screen: every key, and what the panes show."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Cockpit keys

| key | does |
|-----|------|
| `v` | validate now (mid-epoch too) |
| `s` | save a checkpoint now |
| `r` | resume from a checkpoint (pick one, then confirm) |
| `p` | pause / continue training |
| `l` | set the learning rate (`0.01`, or `*0.5` for a factor) |
| `g` | choose the series in the main plot |
| `m` | smoothing on / off |
| `o` | log scale on / off |
| `z` | zoom: the recent window / the whole run |
| `tab` | move between panes |
| `ctrl+p` | command palette: all of the above, and the commands the run's hooks offer |
| `?` | this help |
| `q` | quit: detach (the run goes on) or stop the run (it saves first) |

The **hooks** pane lists, per stage, the hooks in the order they run with their
priorities; `▶` marks the stage running now, *ms/call* is each hook's mean time
per call and *share* its part of the training time (red from 10%).
Red vertical lines in the plots mark resumes, yellow ones learning-rate changes.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and what the panes mean."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 76;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)

    def action_dismiss(self) -> None:
        self.dismiss(None)
