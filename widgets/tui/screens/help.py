"""The help screen: every key (the run's commands, from its command list, then the view's own), and what the panes show."""

from __future__ import annotations

from collections.abc import Iterable

from cockpit.widgets.tui.parts.plots import MARKERS, SMOOTHING
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from cockpit.viewstate import CommandInfo

#: The view's own keys, after the run's commands.
VIEW_KEYS = (
    ("g", "choose the series in the main plot"),
    ("m", "smoothing of the loss: " + ", ".join(f"{weight:g}" for weight in SMOOTHING)),
    ("o", "log / linear scale of the loss (chosen from the data until pressed)"),
    ("z", "zoom: the recent window / the whole run"),
    ("tab", "move between panes"),
)
LAST_KEYS = (
    ("?", "this help"),
    ("q", "quit: detach (the run goes on) or stop the run (it saves first)"),
)
PANES = """
The **hooks** pane lists, per stage, the hooks in the order they run with their
priorities; `▶` marks the stage running now, *ms/call* is each hook's mean time
per call and *share* its part of the training time (red from 10%).
Vertical lines in the plots mark resumes ({resume}) and learning-rate changes ({lr});
dimmed lines are the stretches a resume abandoned.
""".format(resume=MARKERS["resume"][1], lr=MARKERS["lr"][1])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def describe(command: CommandInfo) -> str:
    """What a command does, and the syntax of what it asks to be typed (``...: 0.01, or *0.5``).

    A checkpoint is picked from a list, so its help goes unsaid.
    """
    text = command.description or command.label
    typed = [arg.help for arg in command.required if arg.kind != "checkpoint" and arg.help]
    return text + (f": {'; '.join(typed)}" if typed else "")


def help_markdown(commands: Iterable[CommandInfo]) -> str:
    """The help text: a row per key (commands sharing a key share a row), then the panes."""
    by_key: dict[str, list[CommandInfo]] = {}
    keyless: list[CommandInfo] = []
    for command in commands:
        if command.key:
            by_key.setdefault(command.key, []).append(command)
        else:
            keyless.append(command)
    rows = [(key, " / ".join(describe(c) for c in group)) for key, group in by_key.items()]
    rows += list(VIEW_KEYS)
    palette = "command palette: all of the above"
    if keyless:
        palette += ", and " + ", ".join(f"**{c.title}**" for c in keyless)
    rows.append(("ctrl+p", palette))
    rows += list(LAST_KEYS)
    table = "\n".join(f"| `{key}` | {_cell(text)} |" for key, text in rows)
    return f"# Cockpit keys\n\n| key | does |\n|-----|------|\n{table}\n{PANES}"


class HelpScreen(ModalScreen[None]):
    """Keys and what the panes mean.

    Args:
        commands: the run's commands.
    """

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

    def __init__(self, commands: Iterable[CommandInfo] = ()) -> None:
        super().__init__()
        self.commands = tuple(commands)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(help_markdown(self.commands))

    def action_dismiss(self) -> None:
        self.dismiss(None)
