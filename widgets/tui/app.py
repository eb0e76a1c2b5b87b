"""The terminal cockpit: a Textual app that watches and steers one run.

Data flows one way: a worker thread reads the run's events through the
source (a ``RunClient``) into a ``RunState``; a timer redraws the panes from it
a few times a second, never per event. Keys and the command palette send
commands back through the same source. The app never touches the model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from cockpit.widgets.tui.commands import CockpitCommands
from cockpit.widgets.tui.parts.checkpoints import CheckpointTable
from cockpit.widgets.tui.parts.hooks import HookTable
from cockpit.widgets.tui.parts.log import LogPane
from cockpit.widgets.tui.parts.plots import ScalarPlot
from cockpit.widgets.tui.parts.status import StatusLine
from cockpit.widgets.tui.screens.confirm import ConfirmScreen
from cockpit.widgets.tui.screens.help import HelpScreen
from cockpit.widgets.tui.screens.prompt import PromptScreen
from cockpit.widgets.tui.screens.quit import QuitScreen
from cockpit.widgets.tui.screens.resume import ResumeScreen
from cockpit.widgets.tui.screens.series import SeriesScreen
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, TabbedContent, TabPane

from cockpit.channel.auth import ConnectionError_, StaleConnectionError
from cockpit.viewstate import RunState

#: Below these sizes the layout folds (see app.tcss).
NARROW_WIDTH = 120
SHORT_HEIGHT = 34


class CockpitApp(App[str]):
    """Watch and steer a run.

    Args:
        source: a ``RunClient`` (or anything with ``snapshot``, ``poll_events`` and ``command``).
        frame_rate: redraws per second.
        live: follow the event stream (False: show the first snapshot only, for snapshot tests).
        clock: returns the time now (snapshot tests pass a fixed one).

    The app's return value says how the user left: ``'detach'``, ``'stop'`` or ``'ended'``.
    """

    CSS_PATH = "app.tcss"
    TITLE = "Cockpit"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    BINDINGS = [
        Binding("v", "validate", "validate"),
        Binding("s", "save", "save"),
        Binding("r", "resume", "resume"),
        Binding("p", "pause", "pause"),
        Binding("l", "set_lr", "lr"),
        Binding("g", "series", "series", show=False),
        Binding("m", "smooth", "smooth", show=False),
        Binding("o", "log_scale", "log", show=False),
        Binding("z", "zoom", "zoom", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_cockpit", "quit"),
    ]

    def __init__(self, source: Any, frame_rate: float = 4.0, live: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock
        self.source = source
        self.frame_rate = frame_rate
        self.live = live
        self.state = RunState()
        self.lock = threading.Lock()
        self._drawn_version = -1
        self._outcomes_shown = 0
        self._ended_seen = False
        self._main_keys = ["train/loss"]
        self._outbox: queue.SimpleQueue[tuple[str, tuple[str, ...]]] = queue.SimpleQueue()
        self._sender_stop = threading.Event()

    # --- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            with Vertical(id="plots"):
                yield ScalarPlot(self._main_keys, "train loss", smoothed=True, id="loss-plot")
                with Horizontal(id="aux"):
                    yield ScalarPlot(["train/lr"], "learning rate", id="lr-plot")
                    yield ScalarPlot([], "validation", id="val-plot")
            with Vertical(id="side"):
                yield HookTable(id="hooks")
                yield CheckpointTable(id="checkpoints")
        with TabbedContent(id="bottom"):
            with TabPane("Log", id="tab-log"):
                yield LogPane(id="log")
            with TabPane("Hooks", id="tab-hooks"):
                yield HookTable(id="hooks-narrow")
            with TabPane("Checkpoints", id="tab-checkpoints"):
                yield CheckpointTable(id="checkpoints-narrow")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#hooks", HookTable).border_title = "hooks, in execution order"
        self.query_one("#checkpoints", CheckpointTable).border_title = "checkpoints  ★ best  ● latest  ⏎ resume"
        self.query_one("#log", LogPane).border_title = "log"
        self._layout_for(self.size.width, self.size.height)
        self.feed()
        threading.Thread(target=self._send_commands, name="cockpit-commands", daemon=True).start()
        self.set_interval(1 / self.frame_rate, self.redraw)

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width, event.size.height)
        self._drawn_version = -1  # plots re-fit to the new size

    def _layout_for(self, width: int, height: int) -> None:
        narrow = width < NARROW_WIDTH
        self.screen.set_class(narrow, "-narrow")
        self.screen.set_class(not narrow, "-wide")
        self.screen.set_class(height < SHORT_HEIGHT, "-short")
        if not narrow:
            self.query_one("#bottom", TabbedContent).active = "tab-log"

    # --- data -----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="feed")
    def feed(self) -> None:
        """Read the run: a snapshot, then its events, until the app closes or the run is gone."""
        worker = self.feed  # noqa: F841 - keeps the decorator's worker for cancellation checks
        from textual.worker import get_current_worker

        current = get_current_worker()
        try:
            snapshot = self.source.snapshot()
        except ConnectionError_ as error:
            self.call_from_thread(self.notify, f"cannot reach the run: {error}", severity="error", timeout=10)
            return
        with self.lock:
            self.state.load_snapshot(snapshot)
        while self.live and not current.is_cancelled:
            try:
                events = self.source.poll_events(0.1)
            except StaleConnectionError:
                with self.lock:
                    if not self.state.ended:
                        self.state.status = "died"
                        self.state.version += 1
                return
            except ConnectionError_:
                continue
            if events:
                with self.lock:
                    for event in events:
                        self.state.apply(event)

    def redraw(self) -> None:
        """Bring every pane up to date with the state (a few times a second)."""
        try:
            status_line = self.query_one(StatusLine)
        except NoMatches:
            return  # the app is shutting down: nothing left to draw on
        with self.lock:
            state = self.state
            status_line.show(state, now=self.clock())
            logs = state.take_new_logs()
            outcomes = state.outcomes[self._outcomes_shown:]
            self._outcomes_shown = len(state.outcomes)
            if state.version != self._drawn_version:
                self._drawn_version = state.version
                self.query_one("#val-plot", ScalarPlot).keys = sorted(
                    k for k in state.scalars if k.startswith("val/") and not k.endswith("time"))
                for plot in self.query(ScalarPlot):
                    if plot.display and plot.size.width:
                        plot.draw(state)
                for table in self.query(HookTable):
                    table.show(state)
                for table in self.query(CheckpointTable):
                    table.show(state)
            ended, status, detail = state.ended, state.status, state.status_detail
        if logs:
            self.query_one(LogPane).add(logs)
        for outcome in outcomes:
            severity = {"applied": "information", "rejected": "warning"}.get(outcome["outcome"], "error")
            self.notify(outcome["message"], title=f"{outcome['name']}: {outcome['outcome']}", severity=severity)
        if ended and not self._ended_seen:
            self._ended_seen = True
            severity = "error" if status in ("failed", "died") else "information"
            message = f"the run {status}" + (f": {detail}" if detail else "") + "; press q to leave"
            self.notify(message, severity=severity, timeout=30)
            if status in ("failed", "died"):
                self.query_one("#bottom", TabbedContent).active = "tab-log"

    # --- commands -------------------------------------------------------------------------------
    def send(self, name: str, *args: str) -> None:
        """Send a command (in the order keys were pressed); its outcome arrives as an event."""
        self._outbox.put((name, args))

    def _send_commands(self) -> None:
        """The one thread that sends commands, one after another, so their order is kept.

        A daemon thread rather than a Textual worker, so it can never hold up the app's exit.
        """
        while not self._sender_stop.is_set():
            try:
                name, args = self._outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.source.command(name, *args, wait=False)
            except ConnectionError_ as error:
                if not self._sender_stop.is_set():
                    self.call_from_thread(self.notify, str(error), title=f"{name}: not sent", severity="error")

    def on_unmount(self) -> None:
        self._sender_stop.set()  # the command sender stops with the app

    def perform(self, action: str) -> None:
        """Run ``action_<action>`` (for the command palette)."""
        getattr(self, f"action_{action}")()

    def _when_live(self, what: str) -> bool:
        if self.state.ended:
            self.notify(f"the run has ended; cannot {what}", severity="warning")
            return False
        return True

    def action_validate(self) -> None:
        if self._when_live("validate"):
            self.send("val")

    def action_save(self) -> None:
        if self._when_live("save"):
            self.send("save")

    def action_pause(self) -> None:
        if self._when_live("pause or continue"):
            self.send("continue" if self.state.status == "paused" else "pause")

    def action_resume(self) -> None:
        if not self._when_live("resume"):
            return

        def confirmed(path: str, yes: bool | None) -> None:
            if yes:
                self.send("resume", path)

        def picked(path: str | None) -> None:
            if path:
                name = path.rsplit("/", 1)[-1]
                self.push_screen(ConfirmScreen(f"Resume from {name}? The run continues from its position; "
                                               "progress since then is dropped."),
                                 lambda yes: confirmed(path, yes))

        self.push_screen(ResumeScreen(self.state, self.lock), picked)

    def on_checkpoint_table_resume_requested(self, message: CheckpointTable.ResumeRequested) -> None:
        if not self._when_live("resume"):
            return
        name = message.path.rsplit("/", 1)[-1]
        self.push_screen(ConfirmScreen(f"Resume from {name}? The run continues from its position; "
                                       "progress since then is dropped."),
                         lambda yes: yes and self.send("resume", message.path))

    def action_set_lr(self) -> None:
        if not self._when_live("set the learning rate"):
            return
        current = self.state.scalar("train/lr")

        def answered(text: str | None) -> None:
            if not text:
                return
            assignment = f"lr*={text[1:].strip()}" if text.startswith("*") else f"lr={text}"
            self.send("set", assignment)

        self.push_screen(PromptScreen("New learning rate (a value like 0.01, or *0.5 to scale):",
                                      placeholder=f"now {current:.4g}"), answered)

    def action_series(self) -> None:
        with self.lock:
            keys = sorted(self.state.scalars)
        plot = self.query_one("#loss-plot", ScalarPlot)

        def chosen(selection: list[str] | None) -> None:
            if selection:
                plot.keys = selection
                self._drawn_version = -1

        self.push_screen(SeriesScreen(keys, plot.keys), chosen)

    def action_smooth(self) -> None:
        plot = self.query_one("#loss-plot", ScalarPlot)
        plot.smoothed = not plot.smoothed
        self._drawn_version = -1
        self.notify(f"smoothing {'on' if plot.smoothed else 'off'}", timeout=2)

    def action_log_scale(self) -> None:
        plot = self.query_one("#loss-plot", ScalarPlot)
        plot.log_scale = not plot.log_scale
        self._drawn_version = -1
        self.notify(f"log scale {'on' if plot.log_scale else 'off'}", timeout=2)

    def action_zoom(self) -> None:
        with self.lock:
            series = self.state.scalars.get("train/loss")
            last = series.steps[-1] if series and series.steps else 0
        window = max(100, last // 10)
        for plot in self.query(ScalarPlot):
            plot.recent = None if plot.recent else window
        self._drawn_version = -1
        recent = self.query_one("#loss-plot", ScalarPlot).recent
        self.notify(f"showing the last {recent} iterations" if recent else "showing the whole run", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_cockpit(self) -> None:
        if self.state.ended:
            self.exit("ended")
            return

        def chosen(choice: str | None) -> None:
            if choice == "detach":
                self.exit("detach")
            elif choice == "stop":
                self.notify("stopping the run: it finishes this iteration and saves", timeout=10)
                self._stop_then_exit()

        self.push_screen(QuitScreen(), chosen)

    @work(thread=True, group="commands")
    def _stop_then_exit(self) -> None:
        try:
            self.source.command("stop", wait=True, timeout=600)
        except ConnectionError_ as error:
            self.call_from_thread(self.notify, str(error), severity="error")
        self.call_from_thread(self.exit, "stop")

    def run_hook_command(self, command: dict[str, Any]) -> None:
        """A command the run's hooks offer (from the palette); asks for its arguments if it has any."""
        if not command["args"]:
            self.send(command["name"])
            return

        def answered(text: str | None) -> None:
            if text is not None:
                self.send(command["name"], *text.split())

        self.push_screen(PromptScreen(f"{command['name']}: {command['description']}",
                                      placeholder=" ".join(command["args"])), answered)


def run_app(source: Any, on_exit: Callable[[str | None], None] | None = None) -> str | None:
    """Run the cockpit on ``source`` until the user leaves; returns how they left."""
    result = CockpitApp(source).run()
    if on_exit is not None:
        on_exit(result)
    return result
